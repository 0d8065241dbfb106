"""Build small workspaces in a temporary directory for config tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rollwave.workspace.loader import Workspace, load_workspace

PROJECT: dict[str, Any] = {
    "project": "t",
    "environments": {"prod": {}, "staging": {"production": False}},
    "services": {"api": {}},
    "policies": {"standard": {"waves": [{"name": "all", "select": "rest"}]}},
}


def write(root: Path, files: dict[str, Any]) -> None:
    """Write ``files`` (path → text, bytes or data dumped as YAML) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


def workspace(root: Path, files: dict[str, Any], *, project: dict[str, Any] | None = None,
              strict: bool = True) -> Workspace:
    """A workspace with ``rollwave.yaml`` (default: api service, prod/staging) plus ``files``."""
    write(root, {"rollwave.yaml": project or PROJECT, **files})
    return load_workspace(root, strict=strict)


def customer(cid: str, *, instances: dict[str, Any] | None = None, **fields: Any,
             ) -> dict[str, Any]:
    """A customer file's data with one prod instance unless ``instances`` is given."""
    return {"id": cid, **fields, "instances": instances or {"prod": {"environment": "prod"}}}
