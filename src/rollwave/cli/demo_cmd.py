"""``rollwave demo``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """The demo command is registered by rollwave.demo once it exists."""
