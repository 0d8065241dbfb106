"""JSON Schemas of the workspace files, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rollwave.core.model import Customer, Project


def schemas() -> dict[str, dict[str, Any]]:
    """``{"project": ..., "customer": ...}`` (plus any other file kinds registered later)."""
    out = {
        "project": _schema(Project, "rollwave.yaml"),
        "customer": _schema(Customer, "customers/<id>.yaml"),
    }
    from rollwave.flags.model import Flag, Segment

    out["flag"] = _schema(Flag, "flags/<key>.yaml")
    out["segment"] = _schema(Segment, "flags/segments/<key>.yaml")
    return out


def _schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    body = model.model_json_schema(mode="validation")
    body["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    body["title"] = f"Rollwave {title}"
    return body
