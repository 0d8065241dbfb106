"""Stale flags: fully on or off, unchanged for N days — and where the code still asks for them.

A flag is *constant* in an environment when every context gets the same variant there: it is
killed or disabled (the off variant), or it has no prerequisites and every rule and the
fallthrough serve one and the same variant (a split counts when only one variant has weight).
It is *stale* when it is constant in every environment it defines (or at the top level, if it
defines none) and nobody changed it for ``days`` days. Its code references are the places in a
source tree where the key appears as a quoted string (``"new-checkout"``, ``'new-checkout'``
or ```new-checkout```), which is how SDK calls name flags.

The scan walks the tree once for all keys, skipping version-control and dependency folders,
anything the root ``.gitignore`` (and nested ones) ignores (patterns with ``*``, ``?``,
``[…]``, ``**``, a leading or trailing ``/``; negations are not supported), files over 2 MB
and binary files.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from rollwave.flags.compiler import resolve
from rollwave.flags.model import Flag

DEFAULT_EXCLUDES = frozenset({
    ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".tox", ".nox", "dist", "build", "target", ".rollwave",
    ".idea", ".vscode", ".gradle", ".terraform", "bower_components", ".next", ".cache",
})
MAX_FILE_BYTES = 2_000_000


@dataclass(frozen=True, slots=True)
class CodeRef:
    """One place a flag key appears in the source tree."""

    path: str
    line: int
    text: str


@dataclass
class StaleFlag:
    """A flag that serves one variant everywhere and has not changed for a while."""

    key: str
    serves: dict[str, str]  # environment (or "*") → the variant everyone gets
    updated_at: datetime
    updated_by: str
    references: list[CodeRef] = field(default_factory=list)

    def describe(self) -> str:
        """``on in production, staging`` etc."""
        by_variant: dict[str, list[str]] = {}
        for env, variant in self.serves.items():
            by_variant.setdefault(variant, []).append(env)
        return "; ".join(f"'{variant}' " + ("everywhere" if envs == ["*"] else
                                           "in " + ", ".join(envs))
                         for variant, envs in by_variant.items())


def constant_variant(flag: Flag, environment: str | None) -> str | None:
    """The one variant every context gets in ``environment``, or None when it varies."""
    resolved = resolve(flag, environment)
    if resolved.killed or not resolved.enabled:
        return resolved.off_variant
    if flag.prerequisites:
        return None
    served: set[str] = set()
    for serve in [*(rule.serve for rule in resolved.rules), resolved.fallthrough]:
        if serve.variant is not None:
            served.add(serve.variant)
        else:
            weighted = [w.variant for w in serve.split or [] if w.weight > 0]
            if len(weighted) != 1:
                return None
            served.add(weighted[0])
    return served.pop() if len(served) == 1 else None


def stale_flags(items: Iterable[tuple[Flag, datetime, str]], *, now: datetime, days: float,
                environments: Sequence[str] | None = None) -> list[StaleFlag]:
    """Flags constant in every environment (or those given) and unchanged for ``days`` days.

    ``items`` are ``(flag, updated_at, updated_by)``.
    """
    cutoff = now - timedelta(days=days)
    found = []
    for flag, updated_at, updated_by in items:
        if updated_at > cutoff:
            continue
        envs: list[str | None] = list(environments) if environments else (
            list(flag.environments) or [None])
        serves: dict[str, str] = {}
        for env in envs:
            variant = constant_variant(flag, env)
            if variant is None:
                break
            serves[env or "*"] = variant
        else:
            found.append(StaleFlag(flag.key, serves, updated_at, updated_by))
    return sorted(found, key=lambda s: s.updated_at)


class _Ignore:
    """A ``.gitignore``-ish matcher for one directory's patterns."""

    def __init__(self, base: str, lines: Iterable[str]) -> None:
        self.base = base
        self.rules: list[tuple[str, bool, bool]] = []  # pattern, anchored, directory only
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith(("#", "!")):
                continue
            directory = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line
            self.rules.append((line.lstrip("/"), anchored, directory))

    def ignored(self, relative: str, name: str, is_dir: bool) -> bool:
        inner = relative[len(self.base):].lstrip("/") if self.base else relative
        for pattern, anchored, directory in self.rules:
            if directory and not is_dir:
                continue
            target = inner if anchored else name
            if fnmatch.fnmatchcase(target, pattern) or (
                    "**" in pattern and fnmatch.fnmatchcase(target, pattern.replace("**/", ""))):
                return True
        return False


def _read_ignore(directory: Path, relative: str) -> _Ignore | None:
    path = directory / ".gitignore"
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return None
    return _Ignore(relative, text.splitlines())


def iter_source_files(root: Path, *, excludes: frozenset[str] = DEFAULT_EXCLUDES,
                      ) -> Iterator[tuple[Path, str]]:
    """Every file under ``root`` worth scanning, as (path, path relative to root)."""
    stack: list[tuple[Path, str, list[_Ignore]]] = [(root, "", [])]
    while stack:
        directory, relative, ignores = stack.pop()
        own = _read_ignore(directory, relative)
        active = [*ignores, own] if own else ignores
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            rel = f"{relative}/{entry.name}" if relative else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=False)
            except OSError:
                continue
            if is_dir and entry.name in excludes:
                continue
            if any(ignore.ignored(rel, entry.name, is_dir) for ignore in active):
                continue
            if is_dir:
                stack.append((Path(entry.path), rel, active))
            elif is_file:
                yield Path(entry.path), rel


def find_references(root: Path, keys: Iterable[str], *, limit_per_key: int = 50,
                    ) -> dict[str, list[CodeRef]]:
    """Where each key appears quoted in the source tree under ``root``."""
    wanted = sorted(set(keys), key=len, reverse=True)
    found: dict[str, list[CodeRef]] = {key: [] for key in wanted}
    if not wanted:
        return found
    pattern = re.compile("([\"'`])(" + "|".join(re.escape(k) for k in wanted) + r")\1")
    for path, rel in iter_source_files(root):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:1024]:
            continue
        text = data.decode("utf-8", errors="replace")
        line, last = 1, 0
        for match in pattern.finditer(text):
            key = match.group(2)
            line += text.count("\n", last, match.start())
            last = match.start()
            refs = found[key]
            if len(refs) < limit_per_key:
                start = text.rfind("\n", 0, match.start()) + 1
                end = text.find("\n", match.end())
                snippet = text[start:end if end >= 0 else len(text)].strip()
                refs.append(CodeRef(rel, line, snippet[:200]))
    return found
