"""``rollwave config explain`` and ``rollwave drift`` (registered when the config engine exists)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Config commands arrive with the layered configuration engine."""
