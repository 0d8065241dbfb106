"""Snapshot documents: every flag as it applies in one environment, ready for an SDK.

The server serves ``snapshot_document(...)`` at ``GET /api/v1/flags/snapshot`` and over the
SSE stream; SDKs turn it back into a compiled :class:`~rollwave.flags.engine.Snapshot` with
:func:`snapshot_from_document`. Flags are *collapsed* for the environment (its switches and
overrides applied, other environments left out), so clients never see other environments.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

from rollwave.errors import Problem, ValidationFailed
from rollwave.flags.compiler import resolve
from rollwave.flags.engine import Snapshot, compile_snapshot
from rollwave.flags.model import Flag, FlagSet, Segment

FORMAT = "rollwave.flags.snapshot/v1"


def collapse(flag: Flag, environment: str | None) -> Flag:
    """``flag`` with ``environment``'s settings applied and no per-environment section."""
    resolved = resolve(flag, environment)
    return flag.model_copy(update={
        "enabled": resolved.enabled, "killed": resolved.killed, "rules": resolved.rules,
        "fallthrough": resolved.fallthrough, "off_variant": resolved.off_variant,
        "environments": {}, "rollout_plan": None,
    })


def snapshot_document(flagset: FlagSet, environment: str | None, revision: int) -> dict[str, Any]:
    """The JSON snapshot of ``flagset`` for ``environment`` at ``revision``, with its ETag."""
    flags = {key: collapse(flag, environment).model_dump(mode="json", exclude_defaults=True)
             | {"key": key, "type": flag.type}
             for key, flag in sorted(flagset.flags.items())}
    segments = {key: segment.model_dump(mode="json", exclude_defaults=True) | {"key": key}
                for key, segment in sorted(flagset.segments.items())}
    body = {"format": FORMAT, "environment": environment, "flags": flags, "segments": segments}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()[:32]
    return {**body, "revision": revision, "etag": f'"{digest}"'}


def snapshot_from_document(document: Any) -> Snapshot:
    """Validate and compile a snapshot document; raise ValidationFailed if it is malformed."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValidationFailed([Problem(message=f"not a {FORMAT} document",
                                        code="flag.snapshot")], what="snapshot")
    problems: list[Problem] = []
    flags: dict[str, Flag] = {}
    segments: dict[str, Segment] = {}
    for key, data in (document.get("segments") or {}).items():
        try:
            segments[key] = Segment.model_validate(data)
        except ValueError as exc:
            problems.append(Problem(message=f"segment '{key}': {exc}", path=f"segments.{key}",
                                    code="flag.snapshot"))
    for key, data in (document.get("flags") or {}).items():
        try:
            flags[key] = Flag.model_validate(data)
        except ValueError as exc:
            problems.append(Problem(message=f"flag '{key}': {exc}", path=f"flags.{key}",
                                    code="flag.snapshot"))
    if problems:
        raise ValidationFailed(problems, what="snapshot")
    snapshot = compile_snapshot(FlagSet(flags=flags, segments=segments), None,
                                version=str(document.get("etag", "")))
    snapshot.environment = document.get("environment")
    return snapshot


@dataclass(frozen=True, slots=True)
class CompiledEnvironment:
    """A snapshot document with its compiled engine, for one environment at one revision."""

    document: dict[str, Any]
    snapshot: Snapshot
    revision: int

    @property
    def etag(self) -> str:
        """The document's strong ETag (a content hash)."""
        return str(self.document["etag"])


class SnapshotCache:
    """Compiles each environment's snapshot once per store revision (thread-safe)."""

    def __init__(self, load: Any) -> None:
        self._load = load  # () -> (FlagSet, revision)
        self._lock = threading.Lock()
        self._cache: dict[str | None, CompiledEnvironment] = {}

    def get(self, environment: str | None, revision: int) -> CompiledEnvironment:
        """The compiled environment at ``revision`` (the store's current revision)."""
        cached = self._cache.get(environment)
        if cached is not None and cached.revision == revision:
            return cached
        with self._lock:
            cached = self._cache.get(environment)
            if cached is not None and cached.revision == revision:
                return cached
            flagset, actual = self._load()
            document = snapshot_document(flagset, environment, actual)
            compiled = CompiledEnvironment(document, snapshot_from_document(document), actual)
            self._cache[environment] = compiled
            return compiled
