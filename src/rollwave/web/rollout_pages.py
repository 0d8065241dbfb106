"""Rollout pages: history, detail with live progress (SSE), evidence, and controls."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from rollwave.core.states import ControlAction, RolloutState
from rollwave.errors import NotFound, Problem, RollwaveError, ValidationFailed
from rollwave.services import audit, fleet_views, rollouts
from rollwave.services.access import Principal
from rollwave.services.context import App
from rollwave.storage import rollouts as repo
from rollwave.web import charts
from rollwave.web.common import (
    SECURITY_HEADERS,
    STATE_CLASS,
    PageRoute,
    User,
    acting,
    ctx_of,
    markup,
    render,
    render_text,
)

STATE_ORDER = ("succeeded", "rolled_back", "rollback_failed", "held", "verifying", "deploying",
               "rolling_back", "waiting_window", "pending", "skipped")
MAX_TARGET_ROWS = 500
STREAM_POLL = 0.4  # seconds between looks at the event log
STREAM_MAX = 30 * 60  # a stream ends after this; EventSource reconnects by itself
HEARTBEAT = 15.0

ACTION_PERMISSION = {ControlAction.APPROVE: "approve", ControlAction.PAUSE: "deploy",
                     ControlAction.RESUME: "deploy", ControlAction.ABORT: "deploy",
                     ControlAction.ROLLBACK: "deploy"}
ACTION_WORDS = {
    ControlAction.APPROVE: "Approve the next wave: the orchestrator starts it.",
    ControlAction.PAUSE: "Pause: running instances finish; no new instance starts until resumed.",
    ControlAction.RESUME: "Resume: the rollout carries on where it paused.",
    ControlAction.ABORT: "Abort: no further instance is deployed; instances stay as they are "
                         "(nothing is rolled back).",
    ControlAction.ROLLBACK: "Roll back: every instance this rollout changed returns to its "
                            "previous version and config.",
}
REASON_REQUIRED = {ControlAction.ABORT, ControlAction.ROLLBACK}


@dataclass(frozen=True)
class ControlState:
    """Whether the caller may take an action now, and if not, why."""

    action: ControlAction
    allowed: bool
    why: str


def controls_for(app: App, record: repo.RolloutRecord, user: Principal) -> list[ControlState]:
    """Every control with whether ``user`` may use it on ``record`` now."""
    out = []
    allowed = rollouts.allowed_actions(record)
    for action in ControlAction:
        why = ""
        ok_state = action in allowed
        if action == ControlAction.APPROVE and ok_state and \
                record.state != RolloutState.WAITING:
            ok_state = False  # nothing waits for an approval right now
        if not ok_state:
            continue
        if not user.can(ACTION_PERMISSION[action]):
            why = f"needs the {ACTION_PERMISSION[action]} permission (your roles: " \
                  f"{', '.join(sorted(user.roles))})"
        elif action == ControlAction.APPROVE and user.username == record.requested_by and \
                fleet_views.production_rollout(app, record.plan):
            why = "you requested this production rollout: another approver must approve it"
        out.append(ControlState(action=action, allowed=not why, why=why))
    return out


def detail_data(app: App, rollout_id: str, user: Principal,
                state_filter: str = "") -> dict[str, Any]:
    """The rollout, its waves and targets, and recent events."""
    view = rollouts.status(app, rollout_id, event_limit=200)
    record = view.rollout
    by_wave: dict[int, list[repo.TargetRecord]] = defaultdict(list)
    for t in view.targets:
        by_wave[t.wave].append(t)
    waves = []
    for index, wave in enumerate(record.plan.get("waves", [])):
        rows = by_wave.get(index, [])
        counts = Counter(t.state.value for t in rows)
        waves.append({"index": index, "name": wave.get("name", f"wave {index + 1}"),
                      "size": len(rows), "done": sum(1 for t in rows if t.state.terminal),
                      "counts": dict(counts), "gates": wave.get("gates", []),
                      "parallelism": wave.get("parallelism"), "bake": wave.get("bake"),
                      "bar": markup(charts.spark_bar(counts, STATE_ORDER, STATE_CLASS)),
                      "current": index == record.current_wave and record.state.active})
    targets = list(view.targets)
    if state_filter:
        targets = [t for t in targets if t.state.value == state_filter]
    elif len(targets) > MAX_TARGET_ROWS:
        moving = [t for t in targets if t.state.value not in ("pending", "succeeded")]
        targets = (moving + [t for t in targets if t.state.value in ("pending", "succeeded")])
    shown = targets[:MAX_TARGET_ROWS]
    last_seq = max((e.seq for e in view.events), default=0)
    return {"rollout": record, "waves": waves, "targets": shown,
            "hidden_targets": len(targets) - len(shown), "counts": view.counts,
            "events": view.events, "last_seq": last_seq,
            "controls": controls_for(app, record, user), "state_filter": state_filter,
            "total_targets": len(view.targets)}


def evidence_data(app: App, rollout_id: str, instance: str) -> dict[str, Any]:
    """One instance's verification verdict with a chart per check, and its deploy log."""
    record = rollouts.resolve(app, rollout_id)
    with app.db().read() as conn:
        target = repo.get_target(conn, record.id, instance)
    if target is None:
        raise NotFound(f"rollout {record.id} has no instance '{instance}'")
    verdict = dict(target.verdict or {})
    checks = []
    traffic: dict[str, Any] = {}
    for check in verdict.get("checks", []) or []:
        if not isinstance(check, dict):
            continue
        raw = check.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        series = data.get("series")
        chart = ""
        if isinstance(series, dict) and series:
            if not traffic and isinstance(series.get("request_rate"), list):
                traffic = {"request rate": series["request_rate"]}
            chart = charts.line_chart(_check_series(series, data.get("metric")),
                                      unit=str(data.get("unit") or ""),
                                      threshold=check.get("threshold"),
                                      title=f"{check.get('name')} during verification")
        if not chart:
            chart = charts.gauge(check.get("value"), check.get("threshold"),
                                 unit=str(data.get("unit") or ""))
        checks.append({**check, "chart": markup(chart)})
    traffic_chart = markup(charts.line_chart(traffic, unit="req/s",
                                             title="traffic during verification")
                           if traffic else "")
    logs = audit.deploy_logs(app, record.id, instance)
    with app.db().read() as conn:
        from rollwave.storage.events import list_events

        instance_events = list_events(conn, rollout_id=record.id, instance=instance, limit=300)
    return {"rollout": record, "target": target, "verdict": verdict, "checks": checks,
            "logs": logs, "instance_events": instance_events, "traffic": traffic_chart}


def _check_series(series: dict[str, Any], metric: Any) -> dict[str, Any]:
    """The lines a check's chart shows: its own measure (latency quantiles together, as they
    share a unit), or every series when the check does not say which is its own."""
    if isinstance(metric, str) and metric in series:
        if metric.endswith("_ms"):
            return {k: v for k, v in series.items() if k.endswith("_ms")}
        return {metric: series[metric]}
    return series


def _sse(event: str, html: str, event_id: int | None = None) -> str:
    lines = html.replace("\r", "").split("\n")
    head = f"id: {event_id}\n" if event_id is not None else ""
    return head + f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def router() -> APIRouter:
    api = APIRouter(include_in_schema=False, route_class=PageRoute)

    @api.get("/rollouts")
    async def history(request: Request, user: User, q: str = "", state: str = "",
                      before: str = "") -> Response:
        if state and state not in {s.value for s in RolloutState}:
            raise ValidationFailed([Problem(message=f"unknown state '{state}'", path="state")],
                                   what="history filter")
        cursor = _parse_time(before)
        ctx = ctx_of(request)
        rows = await run_in_threadpool(fleet_views.search_rollouts, ctx, q=q, state=state,
                                       before=cursor, limit=51)
        more = len(rows) > 50
        rows = rows[:50]
        counts = await run_in_threadpool(fleet_views.target_counts, ctx, [r.id for r in rows])
        return render(request, "history.html", user, rows=rows, counts=counts, q=q,
                      state=state, states=[s.value for s in RolloutState],
                      next_before=rows[-1].created_at.isoformat() if more and rows else "",
                      before=before)

    @api.get("/rollouts/{rollout_id}")
    async def detail(request: Request, user: User, rollout_id: str, state: str = "",
                     done: str = "") -> Response:
        data = await run_in_threadpool(detail_data, ctx_of(request), rollout_id, user, state)
        return render(request, "rollout.html", user, done=done, **data)

    @api.get("/rollouts/{rollout_id}/live")
    async def live(request: Request, user: User, rollout_id: str, state: str = "") -> Response:
        """The live part of the page (the fallback when SSE is unavailable)."""
        data = await run_in_threadpool(detail_data, ctx_of(request), rollout_id, user, state)
        return render(request, "_rollout_live.html", user, **data)

    @api.get("/rollouts/{rollout_id}/stream")
    async def stream(request: Request, user: User, rollout_id: str, after: int = 0,
                     state: str = "") -> StreamingResponse:
        ctx = ctx_of(request)
        record = await run_in_threadpool(rollouts.resolve, ctx, rollout_id)
        resumed = request.headers.get("last-event-id", "")
        if resumed.isdigit():
            after = max(after, int(resumed))
        return StreamingResponse(_events(request, ctx, record.id, after, state, user),
                                 media_type="text/event-stream",
                                 headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"})

    @api.get("/rollouts/{rollout_id}/evidence/{instance:path}")
    async def evidence(request: Request, user: User, rollout_id: str, instance: str) -> Response:
        data = await run_in_threadpool(evidence_data, ctx_of(request), rollout_id, instance)
        template = "_evidence.html" if request.headers.get("hx-request") else "evidence.html"
        return render(request, template, user, **data)

    @api.get("/rollouts/{rollout_id}/confirm/{action}")
    async def confirm(request: Request, user: User, rollout_id: str,
                      action: ControlAction) -> Response:
        ctx = ctx_of(request)
        record = await run_in_threadpool(rollouts.resolve, ctx, rollout_id)
        states = await run_in_threadpool(controls_for, ctx, record, user)
        control = next((c for c in states if c.action == action), None)
        template = "_confirm.html" if request.headers.get("hx-request") else "confirm.html"
        return render(request, template, user, rollout=record, action=action, control=control,
                      words=ACTION_WORDS[action], reason_required=action in REASON_REQUIRED)

    @api.post("/rollouts/{rollout_id}/control/{action}")
    async def control(request: Request, user: User, rollout_id: str, action: ControlAction,
                      reason: str = Form(""), confirmed: str = Form("")) -> Response:
        user.require(ACTION_PERMISSION[action])
        problems = []
        if confirmed != "yes":
            problems.append(Problem(message="the action was not confirmed", path="confirmed",
                                    hint="use the confirmation form"))
        if action in REASON_REQUIRED and not reason.strip():
            problems.append(Problem(message=f"{action.value} needs a reason", path="reason",
                                    hint="say why, for the audit log"))
        if problems:
            raise ValidationFailed(problems, what=action.value)
        app = acting(request, user)
        base = ctx_of(request)
        record = await run_in_threadpool(rollouts.resolve, base, rollout_id)
        production = await run_in_threadpool(fleet_views.production_rollout, base, record.plan)
        result = await run_in_threadpool(
            lambda: rollouts.control(app, record.id, action, reason=reason.strip(),
                                     enforce_separation=production))
        return RedirectResponse(f"/rollouts/{result.id}?done={action.value}", status_code=303)

    return api


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed([Problem(message=f"'{text}' is not a time", path="before")],
                               what="paging") from None
    return moment if moment.tzinfo else None


async def _events(request: Request, ctx: App, rollout_id: str, after: int, state: str,
                  user: Principal) -> AsyncIterator[str]:
    """Push the live part whenever the rollout's event log grows; end when it is over."""
    started = time.monotonic()
    last_sent = time.monotonic()
    last = after
    yield "retry: 2000\n\n"
    record = await run_in_threadpool(rollouts.resolve, ctx, rollout_id)
    newest = await run_in_threadpool(fleet_views.last_rollout_seq, ctx, rollout_id)
    if record.state.terminal and newest <= last:
        yield _sse("done", "")
        return
    while time.monotonic() - started < STREAM_MAX:
        if await request.is_disconnected():
            return
        try:
            newest = await run_in_threadpool(fleet_views.last_rollout_seq, ctx, rollout_id)
        except RollwaveError:
            newest = last
        if newest > last:
            data = await run_in_threadpool(detail_data, ctx, rollout_id, user, state)
            new_events = await run_in_threadpool(fleet_views.rollout_event_window, ctx,
                                                 rollout_id, last)
            last = max([last, *(e["seq"] for e in new_events)])
            yield _sse("progress", render_text(request, "_rollout_live.html", user, **data))
            if new_events:  # the id lets a reconnecting EventSource resume after it
                yield _sse("timeline", render_text(request, "_timeline_rows.html", user,
                                                   events=new_events), last)
            last_sent = time.monotonic()
            if data["rollout"].state.terminal:
                yield _sse("done", "")
                return
        elif time.monotonic() - last_sent > HEARTBEAT:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(STREAM_POLL)
