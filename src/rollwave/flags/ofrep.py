"""OpenFeature Remote Evaluation Protocol (OFREP) endpoints, version 1.

``POST /ofrep/v1/evaluate/flags/{key}`` evaluates one flag; ``POST /ofrep/v1/evaluate/flags``
evaluates them all (bulk) and supports ``ETag``/``If-None-Match`` → 304. Request bodies are
``{"context": {"targetingKey": "...", ...}}``. Responses follow the protocol:

- 200 ``{"key", "value", "reason", "variant", "metadata"}``
- 400 ``{"key", "errorCode": PARSE_ERROR|TARGETING_KEY_MISSING|INVALID_CONTEXT|GENERAL,
  "errorDetails"}``
- 404 ``{"key", "errorCode": "FLAG_NOT_FOUND", "errorDetails"}``
- bulk 200 ``{"flags": [success or error items], "metadata": {...}}``

OFREP does not name an environment: it comes from the ``environment`` query parameter or the
``X-Rollwave-Environment`` header, else the router's default environment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from rollwave.flags.details import ErrorCode, EvaluationDetails
from rollwave.flags.snapshots import CompiledEnvironment

ENVIRONMENT_HEADER = "X-Rollwave-Environment"


def ofrep_metadata(details: EvaluationDetails) -> dict[str, Any]:
    """Flag metadata as OFREP allows it (string, number and boolean values only)."""
    out = {k: v for k, v in details.flag_metadata.items()
           if isinstance(v, str | int | float | bool)}
    if details.rule_id is not None:
        out["ruleId"] = details.rule_id
    return out


def success_body(details: EvaluationDetails) -> dict[str, Any]:
    """The OFREP success item for ``details``."""
    return {"key": details.flag_key, "value": details.value, "reason": str(details.reason),
            "variant": details.variant, "metadata": ofrep_metadata(details)}


def error_body(details: EvaluationDetails) -> dict[str, Any]:
    """The OFREP error item for ``details``."""
    return {"key": details.flag_key, "errorCode": str(details.error_code),
            "errorDetails": details.error_message or str(details.error_code)}


async def _read_context(request: Request) -> tuple[dict[str, Any] | None, str | None]:  # noqa: PLR0911
    """The request's evaluation context, or an error message for a 400."""
    try:
        raw = await request.body()
    except ClientDisconnect:
        return None, "client went away"
    if not raw.strip():
        return {}, None
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return None, f"request body is not JSON: {exc}"
    if not isinstance(body, dict):
        return None, "request body must be a JSON object"
    context = body.get("context", {})
    if context is None:
        return {}, None
    if not isinstance(context, dict):
        return None, "'context' must be a JSON object"
    return context, None


def ofrep_router(
    current: Callable[[str | None], CompiledEnvironment],
    environment_of: Callable[[Request], str | None],
    read_auth: Callable[..., Any],
) -> APIRouter:
    """OFREP routes; ``current(environment)`` gives the up-to-date compiled environment."""
    router = APIRouter(prefix="/ofrep/v1", tags=["ofrep"])
    read_dep = Depends(read_auth)

    @router.post("/evaluate/flags/{key:path}")
    async def evaluate_flag(key: str, request: Request,
                            _actor: Any = read_dep) -> Response:
        context, problem = await _read_context(request)
        if context is None:
            return JSONResponse({"key": key, "errorCode": ErrorCode.INVALID_CONTEXT,
                                 "errorDetails": problem}, status_code=400)
        details = current(environment_of(request)).snapshot.evaluate(key, context, None)
        if details.error_code is None:
            return JSONResponse(success_body(details))
        status = 404 if details.error_code == ErrorCode.FLAG_NOT_FOUND else 400
        return JSONResponse(error_body(details), status_code=status)

    @router.post("/evaluate/flags")
    async def evaluate_all(request: Request, _actor: Any = read_dep) -> Response:
        context, problem = await _read_context(request)
        if context is None:
            return JSONResponse({"errorCode": ErrorCode.INVALID_CONTEXT,
                                 "errorDetails": problem}, status_code=400)
        compiled = current(environment_of(request))
        context_hash = hashlib.sha256(json.dumps(context, sort_keys=True, default=str)
                                      .encode()).hexdigest()[:16]
        etag = f'"{compiled.etag.strip(chr(34))}-{context_hash}"'
        if etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers={"ETag": etag})
        items = []
        for details in compiled.snapshot.evaluate_all(context):
            items.append(success_body(details) if details.error_code is None  # noqa: PERF401
                         else error_body(details))
        body = {"flags": items, "metadata": {"revision": compiled.revision}}
        return JSONResponse(body, headers={"ETag": etag})

    return router


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {part.strip().removeprefix("W/") for part in header.split(",")}
