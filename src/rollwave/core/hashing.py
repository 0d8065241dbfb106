"""Content hashes: the same data always gives the same short, stable identifier."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(data: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def content_hash(data: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``data``, hex, truncated to ``length`` characters.

    >>> content_hash({"b": 1, "a": [1, 2]}) == content_hash({"a": [1, 2], "b": 1})
    True
    """
    return hashlib.sha256(canonical_json(data)).hexdigest()[:length]


def config_hash(config: Any) -> str:
    """The hash an instance reports for the configuration it runs (see the demo service)."""
    return content_hash(config)
