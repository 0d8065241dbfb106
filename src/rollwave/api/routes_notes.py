"""REST API for notes per customer: what people know about a customer that files do not say.

Reading needs ``read``; writing needs a role that acts on the fleet (deployer, approver or
admin). Notes are append-only and each one appends an event to the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from rollwave.api.auth import DOCUMENTED_SECURITY, current_principal, require
from rollwave.api.common import PREFIX, error_responses, fresh_app
from rollwave.errors import PermissionDenied
from rollwave.services import notes
from rollwave.services.access import Principal

Reader = Annotated[Principal, Depends(require("read"))]


async def _writer(request: Request) -> Principal:
    principal = await current_principal(request)
    if not (principal.can("deploy") or principal.can("approve")):
        raise PermissionDenied(f"{principal.username} may not write notes: needs role "
                               "deployer, approver or admin")
    return principal


Writer = Annotated[Principal, Depends(_writer)]


class Note(BaseModel):
    id: int
    customer: str
    instance: str | None = Field(description="CUSTOMER/INSTANCE, or null for the customer.")
    author: str
    body: str
    created_at: datetime


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=notes.MAX_BODY)
    instance: str | None = Field(default=None, max_length=200, description="One of the "
                                 "customer's instances (e.g. `prod`), or omit for the "
                                 "customer as a whole.")


def router(ctx: Any) -> APIRouter:
    """Notes routes under ``/api/v1``."""
    api = APIRouter(prefix=PREFIX, tags=["notes"], dependencies=DOCUMENTED_SECURITY)

    @api.get("/customers/{customer}/notes", response_model=list[Note],
             summary="A customer's notes, newest first",
             responses=error_responses(404))
    def list_notes(request: Request, principal: Reader, customer: str,
                   instance: Annotated[str | None, Query(max_length=200)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   before: Annotated[int | None, Query(
                       ge=0, description="Only notes older than this note id (paging).")]
                   = None) -> list[dict[str, Any]]:
        app = fresh_app(request, principal)
        found = notes.list_notes(app, customer, instance=instance, limit=limit, before=before)
        return [n.to_dict() for n in found]

    @api.post("/customers/{customer}/notes", status_code=201, response_model=Note,
              summary="Add a note on a customer (or one of its instances)",
              responses=error_responses(404))
    def add_note(request: Request, principal: Writer, customer: str,
                 body: NoteCreate) -> dict[str, Any]:
        app = fresh_app(request, principal)
        return notes.add_note(app, customer, body.body, instance=body.instance).to_dict()

    return api
