"""JSON Schemas of the workspace files, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from rollwave.core.model import Customer, Project


def schemas() -> dict[str, dict[str, Any]]:
    """``{"project": ..., "customer": ...}`` (plus any other file kinds registered later)."""
    out = {
        "project": _schema(Project, "rollwave.yaml"),
        "customer": _schema(Customer, "customers/<id>.yaml"),
    }
    try:
        from rollwave.flags.model import flag_file_schema
    except ImportError:
        return out
    out["flag"] = flag_file_schema()
    return out


def _schema(model: type[Project] | type[Customer], title: str) -> dict[str, Any]:
    body = model.model_json_schema(mode="validation")
    body["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    body["title"] = f"Rollwave {title}"
    return body
