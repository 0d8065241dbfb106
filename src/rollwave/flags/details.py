"""Evaluation results: OpenFeature reasons and error codes, and the details record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Reason(StrEnum):
    """Why a value was served (OpenFeature's names)."""

    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DISABLED = "DISABLED"
    DEFAULT = "DEFAULT"
    ERROR = "ERROR"
    STALE = "STALE"
    UNKNOWN = "UNKNOWN"


class ErrorCode(StrEnum):
    """Why the caller's default was served (OpenFeature's names)."""

    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    PROVIDER_NOT_READY = "PROVIDER_NOT_READY"
    GENERAL = "GENERAL"


EMPTY_METADATA: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class EvaluationDetails:
    """The outcome of one evaluation.

    Non-error outcomes are built once per flag when it is compiled and shared between
    evaluations, so treat ``value`` (a dict or list for JSON flags) as read-only.
    """

    flag_key: str
    value: Any
    variant: str | None
    reason: str
    rule_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    flag_metadata: Mapping[str, Any] = field(default_factory=lambda: EMPTY_METADATA)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (None fields left out)."""
        out: dict[str, Any] = {"key": self.flag_key, "value": self.value,
                               "reason": self.reason}
        for name in ("variant", "rule_id", "error_code", "error_message"):
            item = getattr(self, name)
            if item is not None:
                out[name] = item
        if self.flag_metadata:
            out["metadata"] = dict(self.flag_metadata)
        return out


def error_details(key: str, default: Any, code: str, message: str) -> EvaluationDetails:
    """Details serving ``default`` with reason ERROR."""
    return EvaluationDetails(flag_key=key, value=default, variant=None, reason=Reason.ERROR,
                             error_code=code, error_message=message)
