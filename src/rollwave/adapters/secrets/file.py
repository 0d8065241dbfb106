"""``file:PATH`` — a secret read from a file (relative paths from the workspace root or the
configured ``base_dir``); one trailing newline is dropped, as editors and ``echo`` add one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from rollwave.errors import SecretError

MAX_SECRET_BYTES = 1024 * 1024


class FileOptions(BaseModel):
    """Options of the ``file`` resolver: the folder relative paths start from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_dir: str | None = None


class FileSecretResolver:
    """Reads secrets from files; relative paths resolve against ``base_dir``."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def resolve(self, body: str) -> str:
        path = Path(body).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            size = path.stat().st_size
            if size > MAX_SECRET_BYTES:
                raise SecretError(f"secret file:{body} is {size:,} bytes; secrets are at most "
                                  f"{MAX_SECRET_BYTES:,}")
            raw = path.read_bytes()
        except OSError as exc:
            raise SecretError(f"cannot read secret file:{body} ({exc.strerror})",
                              hint=f"looked at {path}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"secret file:{body} is not UTF-8 text") from None
        return text.removesuffix("\n").removesuffix("\r")


def create(options: Any, environment: Any) -> FileSecretResolver:
    """Registry factory: ``base_dir`` is relative to ``environment.base_dir`` (the workspace)."""
    root = Path(getattr(environment, "base_dir", None) or Path.cwd())
    base = getattr(options, "base_dir", None)
    return FileSecretResolver(root / base if base else root)
