"""An OpenFeature provider backed by the in-process :class:`~rollwave.sdk.client.RollwaveClient`.

Example::

    from openfeature import api
    from rollwave.sdk.openfeature import RollwaveProvider

    api.set_provider(RollwaveProvider(base_url="http://rollwave:8080", environment="prod"))
    client = api.get_client()
    client.get_boolean_value("new-checkout", False,
                             EvaluationContext("user-1", {"customer": "acme"}))

Resolution never raises: errors come back as details with reason ERROR and an error code.
Flag metadata carries ``ruleId`` when a targeting rule decided the value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.hook import Hook
from openfeature.provider import AbstractProvider, Metadata

from rollwave.flags.details import EvaluationDetails
from rollwave.sdk.client import RollwaveClient

_METADATA = Metadata(name="rollwave")
_CACHE_LIMIT = 100_000


def _context(evaluation_context: EvaluationContext | None) -> Mapping[str, Any]:
    if evaluation_context is None:
        return {}
    targeting_key = evaluation_context.targeting_key
    if targeting_key is None:
        return evaluation_context.attributes
    return {**evaluation_context.attributes, "targetingKey": targeting_key}


def _error_code(code: str) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.GENERAL


def _reason(reason: str) -> Reason | str:
    try:
        return Reason(reason)
    except ValueError:
        return reason


class RollwaveProvider(AbstractProvider):
    """OpenFeature provider evaluating Rollwave flags in-process.

    Pass an existing ``client`` or the :class:`RollwaveClient` keyword arguments
    (``base_url``, ``environment``, ``token``, ``bootstrap``…).
    """

    def __init__(self, client: RollwaveClient | None = None, *,
                 ready_timeout: float = 10.0, **client_options: Any) -> None:
        self._owned = client is None
        self.client = client if client is not None else RollwaveClient(**client_options)
        self.ready_timeout = ready_timeout
        self._resolutions: dict[int, tuple[EvaluationDetails, FlagResolutionDetails[Any]]] = {}
        self.client.on_change(self._changed)

    def _changed(self, _snapshot: object) -> None:
        self._resolutions = {}
        with contextlib.suppress(Exception):  # events are best effort (no registry attached)
            self.emit_provider_configuration_changed(_provider_event())

    def get_metadata(self) -> Metadata:
        """The provider's name."""
        return _METADATA

    def get_provider_hooks(self) -> list[Hook]:
        """No provider hooks."""
        return []

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Wait (up to ``ready_timeout``) for the first snapshot; offline bootstraps are instant."""
        self.client.wait_until_ready(self.ready_timeout)

    def shutdown(self) -> None:
        """Stop the background sync if this provider created the client."""
        if self._owned:
            self.client.close()

    def _resolve(self, key: str, default: Any, evaluation_context: EvaluationContext | None,
                 flag_type: str, convert: Any = None) -> FlagResolutionDetails[Any]:
        entry = self.client.evaluator(key)
        if entry is None or entry[0] != flag_type:
            details = self.client.details(key, None, default, flag_type)  # the error details
        else:
            try:
                details = entry[1](_context(evaluation_context))
            except Exception as exc:  # evaluation never raises
                return FlagResolutionDetails(value=default, error_code=ErrorCode.GENERAL,
                                             error_message=f"{type(exc).__name__}: {exc}",
                                             reason=Reason.ERROR)
        if details.error_code is not None:
            return FlagResolutionDetails(value=default, error_code=_error_code(details.error_code),
                                         error_message=details.error_message,
                                         reason=Reason.ERROR)
        cached = self._resolutions.get(id(details))
        if cached is not None and cached[0] is details and convert is None:
            return cached[1]
        value = details.value if convert is None else convert(details.value)
        if value is _MISMATCH:
            return FlagResolutionDetails(value=default, error_code=ErrorCode.TYPE_MISMATCH,
                                         error_message=f"flag '{key}' value {details.value!r} "
                                                       "does not fit the requested type",
                                         reason=Reason.ERROR)
        metadata: dict[str, Any] = {k: v for k, v in details.flag_metadata.items()
                                    if isinstance(v, str | int | float | bool)}
        if details.rule_id is not None:
            metadata["ruleId"] = details.rule_id
        resolution: FlagResolutionDetails[Any] = FlagResolutionDetails(
            value=value, reason=_reason(details.reason), variant=details.variant,
            flag_metadata=metadata)
        if convert is None and len(self._resolutions) < _CACHE_LIMIT:
            # one resolution per *outcome* (shared details object), not per context
            self._resolutions[id(details)] = (details, resolution)
        return resolution

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: EvaluationContext | None = None,
                                ) -> FlagResolutionDetails[bool]:
        """Resolve a boolean flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "boolean")

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: EvaluationContext | None = None,
                               ) -> FlagResolutionDetails[str]:
        """Resolve a string flag."""
        return self._resolve(flag_key, default_value, evaluation_context, "string")

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: EvaluationContext | None = None,
                                ) -> FlagResolutionDetails[int]:
        """Resolve a number flag as an integer (a fractional value is a TYPE_MISMATCH)."""
        return self._resolve(flag_key, default_value, evaluation_context, "number", _as_int)

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: EvaluationContext | None = None,
                              ) -> FlagResolutionDetails[float]:
        """Resolve a number flag as a float."""
        return self._resolve(flag_key, default_value, evaluation_context, "number", float)

    def resolve_object_details(self, flag_key: str,
                               default_value: Sequence[Any] | Mapping[str, Any],
                               evaluation_context: EvaluationContext | None = None,
                               ) -> FlagResolutionDetails[Any]:
        """Resolve a JSON flag (objects and arrays only, per OpenFeature)."""
        return self._resolve(flag_key, default_value, evaluation_context, "json", _as_object)


_MISMATCH = object()


def _as_int(value: Any) -> Any:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _MISMATCH


def _as_object(value: Any) -> Any:
    return value if isinstance(value, dict | list) else _MISMATCH


def _provider_event() -> Any:
    from openfeature.event import ProviderEventDetails
    return ProviderEventDetails(message="flags changed")
