"""Releases, plan previews, rollouts and their controls, audit log and deployment logs."""

from __future__ import annotations

from typing import Any

from rollwave.core.states import RolloutState
from tests.api.conftest import Api
from tests.orchestration.helpers import wait_for

V1 = "/api/v1"


def _release(api: Api, version: str = "1.0", **extra: Any) -> dict[str, Any]:
    response = api.post("dora", f"{V1}/releases", {"versions": {"web": version}, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _start(api: Api, release: str, user: str = "dora", **extra: Any) -> dict[str, Any]:
    response = api.post(user, f"{V1}/rollouts", {"release": release, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _state(api: Api, rollout_id: str) -> str:
    state: str = api.get("vic", f"{V1}/rollouts/{rollout_id}").json()["rollout"]["state"]
    return state


def test_releases_create_list_get_and_errors(api: Api) -> None:
    release = _release(api, name="r1", notes="first")
    assert release["versions"] == {"web": "1.0"}
    assert release["created_by"] == "dora"
    listed = api.get("vic", f"{V1}/releases").json()
    assert [r["id"] for r in listed] == ["r1"]
    assert api.get("vic", f"{V1}/releases/r1").json()["notes"] == "first"

    missing = api.get("vic", f"{V1}/releases/nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "release.not_found"
    assert missing.json()["hint"]
    duplicate = api.post("dora", f"{V1}/releases", {"versions": {"web": "2.0"}, "name": "r1"})
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "release.exists"
    invalid = api.post("dora", f"{V1}/releases", {"versions": {"nosuch": "1", "web": "a b"}})
    assert invalid.status_code == 422
    assert len(invalid.json()["problems"]) == 2
    assert api.post("vic", f"{V1}/releases", {"versions": {"web": "3"}}).status_code == 403
    assert api.client.post(f"{V1}/releases", json={"versions": {"web": "3"}}).status_code == 401
    with api.ctx.db().read() as conn:
        from rollwave.storage.events import list_events

        created = list_events(conn, kinds=["release.created"])
    assert [e.actor for e in created] == ["dora"]


def test_plan_preview_has_waves_and_grouped_config_diff(api: Api) -> None:
    release = _release(api)
    response = api.get("vic", f"{V1}/releases/{release['id']}/plan")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [w["name"] for w in body["plan"]["waves"]] == ["internal", "canary", "rest"]
    assert sum(len(w["targets"]) for w in body["plan"]["waves"]) == 5
    assert body["release"]["id"] == release["id"]
    changes = body["config_changes"]
    assert changes is None or changes["total"] >= 1
    staging = api.get("vic", f"{V1}/releases/{release['id']}/plan",
                      params={"policy": "staging"}).json()
    assert [t["instance"] for t in staging["plan"]["waves"][0]["targets"]] == ["lab/prod"]
    unknown = api.get("vic", f"{V1}/releases/{release['id']}/plan", params={"policy": "nope"})
    assert unknown.status_code == 422
    assert "nope" in unknown.json()["problems"][0]["message"]
    assert api.get("vic", f"{V1}/releases/nope/plan").status_code == 404


def test_rollout_with_approval_and_separation_of_duties(api: Api) -> None:
    release = _release(api)
    rollout = _start(api, release["id"], user="dap", reason="weekly release")
    assert rollout["state"] == "pending"
    assert rollout["requested_by"] == "dap"
    assert rollout["target_count"] == 5
    rid = rollout["id"]
    with api.orchestrator():
        wait_for(lambda: _state(api, rid) == "waiting", what="approval gate")
        status = api.get("vic", f"{V1}/rollouts/{rid}").json()
        assert status["production"] is True
        assert "approval" in status["rollout"]["waiting_for"]
        assert [w["name"] for w in status["waves"]] == ["internal", "canary", "rest"]
        assert status["waves"][1]["current"] is True
        assert status["waves"][0]["counts"] == {"succeeded": 1}

        own = api.post("dap", f"{V1}/rollouts/{rid}/approve", {"reason": "lgtm"})
        assert own.status_code == 403, own.text
        assert "separation of duties" in own.json()["hint"]
        assert api.post("dora", f"{V1}/rollouts/{rid}/approve", {}).status_code == 403
        assert api.post("vic", f"{V1}/rollouts/{rid}/approve", {}).status_code == 403
        ok = api.post("abe", f"{V1}/rollouts/{rid[:6]}/approve", {"reason": "lgtm"})
        assert ok.status_code == 202, ok.text
        assert ok.json()["created"] is False
        assert ok.json()["rollout"]["id"] == rid
        wait_for(lambda: _state(api, rid) == "succeeded", what="rollout to finish")

    status = api.get("vic", f"{V1}/rollouts/{rid}", params={"events": 500}).json()
    assert status["counts"] == {"succeeded": 5}
    assert all(t["state"] == "succeeded" for t in status["targets"])
    assert all(not w["current"] for w in status["waves"])
    kinds = [e["kind"] for e in status["events"]]
    assert "control.approve" in kinds
    assert kinds[-1] == "rollout.succeeded"
    approvals = [e for e in status["events"] if e["kind"] == "control.approve"]
    assert [e["actor"] for e in approvals] == ["abe"]
    only_rest = api.get("vic", f"{V1}/rollouts/{rid}", params={"wave": 2}).json()
    assert {t["wave"] for t in only_rest["targets"]} == {2}
    assert len(only_rest["targets"]) == 2
    none = api.get("vic", f"{V1}/rollouts/{rid}", params={"target_state": "pending"}).json()
    assert none["targets"] == []
    assert api.get("vic", f"{V1}/rollouts/latest").json()["rollout"]["id"] == rid

    listed = api.get("vic", f"{V1}/rollouts", params={"state": "succeeded"}).json()
    assert [r["id"] for r in listed] == [rid]
    assert api.get("vic", f"{V1}/rollouts", params={"active": "true"}).json() == []
    assert api.get("vic", f"{V1}/rollouts",
                   params={"release": release["id"]}).json()[0]["id"] == rid
    logs = api.get("vic", f"{V1}/rollouts/{rid}/logs")
    assert logs.status_code == 200
    assert isinstance(logs.json(), list)
    assert api.get("vic", f"{V1}/rollouts/nope/logs").status_code == 404


def test_requester_may_approve_a_staging_only_rollout(api: Api) -> None:
    release = _release(api)
    rid = _start(api, release["id"], user="dap", policy="staging")["id"]
    with api.orchestrator():
        wait_for(lambda: _state(api, rid) == "waiting", what="approval gate")
        assert api.get("vic", f"{V1}/rollouts/{rid}").json()["production"] is False
        response = api.post("dap", f"{V1}/rollouts/{rid}/approve", {"wave": 0})
        assert response.status_code == 202, response.text
        wait_for(lambda: _state(api, rid) == "succeeded", what="rollout to finish")


def test_pause_resume_abort_and_invalid_transitions(api: Api) -> None:
    release = _release(api)
    rid = _start(api, release["id"])["id"]
    with api.orchestrator():
        wait_for(lambda: _state(api, rid) == "waiting", what="approval gate")
        paused = api.post("dora", f"{V1}/rollouts/{rid}/pause", {"reason": "lunch"})
        assert paused.status_code == 202, paused.text
        wait_for(lambda: _state(api, rid) == "paused", what="pause")
        assert api.post("vic", f"{V1}/rollouts/{rid}/resume", {}).status_code == 403
        assert api.post("dora", f"{V1}/rollouts/{rid}/resume", {}).status_code == 202
        wait_for(lambda: _state(api, rid) != "paused", what="resume")
        aborted = api.post("dora", f"{V1}/rollouts/{rid}/abort", {"reason": "changed mind"})
        assert aborted.status_code == 202
        wait_for(lambda: _state(api, rid) == "aborted", what="abort")
    again = api.post("dora", f"{V1}/rollouts/{rid}/resume", {})
    assert again.status_code == 409
    assert again.json()["code"] == "rollout.invalid_transition"
    assert api.post("dora", f"{V1}/rollouts/nope/abort", {}).status_code == 404
    events = api.get("vic", f"{V1}/events", params={"rollout": rid, "kind": "control."}).json()
    assert [(e["kind"], e["actor"]) for e in reversed(events["events"])] == [
        ("control.pause", "dora"), ("control.resume", "dora"), ("control.abort", "dora")]


def test_start_errors(api: Api) -> None:
    assert api.post("dora", f"{V1}/rollouts", {"release": "nope"}).status_code == 404
    release = _release(api)
    emergency = api.post("dora", f"{V1}/rollouts", {"release": release["id"],
                                                    "emergency": True})
    assert emergency.status_code == 422
    assert emergency.json()["problems"][0]["path"] == "--reason"
    assert api.post("abe", f"{V1}/rollouts", {"release": release["id"]}).status_code == 403
    first = _start(api, release["id"], policy="nogate")
    overlap = api.post("dora", f"{V1}/rollouts", {"release": release["id"], "policy": "nogate"})
    assert overlap.status_code == 409, overlap.text
    assert first["id"] in overlap.json()["message"]


def test_rollback_of_a_finished_rollout_starts_a_rollback_rollout(api: Api) -> None:
    first = _start(api, _release(api, "1.0")["id"], policy="nogate")["id"]
    with api.orchestrator():
        wait_for(lambda: _state(api, first) == "succeeded", what="1.0")
        second = _start(api, _release(api, "1.1")["id"], policy="nogate")["id"]
        wait_for(lambda: _state(api, second) == "succeeded", what="1.1")
        response = api.post("dora", f"{V1}/rollouts/{second}/rollback",
                            {"reason": "bad reports"})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["created"] is True
        assert body["rollout"]["kind"] == "rollback"
        assert body["rollout"]["parent_id"] == second
        back = body["rollout"]["id"]
        wait_for(lambda: _state(api, back) in {"succeeded", "rolled_back"}, what="rollback")
    assert RolloutState(_state(api, back)).terminal


def test_audit_log_search_and_paging(api: Api) -> None:
    for version in ("1", "2", "3", "4", "5"):
        _release(api, version)
    first = api.get("vic", f"{V1}/events", params={"kind": "release.", "limit": 2}).json()
    assert len(first["events"]) == 2
    seqs = [e["seq"] for e in first["events"]]
    assert seqs == sorted(seqs, reverse=True)
    assert first["next_before"] == seqs[-1]
    second = api.get("vic", f"{V1}/events", params={"kind": "release.", "limit": 2,
                                                     "before": first["next_before"]}).json()
    third = api.get("vic", f"{V1}/events", params={"kind": "release.", "limit": 2,
                                                    "before": second["next_before"]}).json()
    assert len(third["events"]) == 1
    assert third["next_before"] is None
    everything = {e["seq"] for page in (first, second, third) for e in page["events"]}
    assert len(everything) == 5
    assert all(e["actor"] == "dora" for e in first["events"])
    found = api.get("vic", f"{V1}/events", params={"search": "web 3"}).json()["events"]
    assert [e["data"]["versions"] for e in found] == [{"web": "3"}]
    newer = api.get("vic", f"{V1}/events", params={"after": seqs[0]}).json()["events"]
    assert all(e["seq"] > seqs[0] for e in newer)
    assert api.get("vic", f"{V1}/events", params={"rollout": "nope"}).status_code == 404
    assert api.client.get(f"{V1}/events").status_code == 401


def test_status_views_are_never_stale(api: Api) -> None:
    rid = _start(api, _release(api)["id"])["id"]
    first = api.get("vic", f"{V1}/rollouts/{rid}").json()
    assert first["rollout"]["state"] == "pending"
    assert [e["kind"] for e in first["events"]] == ["rollout.created"]
    assert api.get("vic", f"{V1}/rollouts/{rid}").json() == first  # served from the cache
    assert api.post("dora", f"{V1}/rollouts/{rid}/pause", {"reason": "wait"}).status_code == 202
    second = api.get("vic", f"{V1}/rollouts/{rid[:5]}").json()
    assert [e["kind"] for e in second["events"]] == ["rollout.created", "control.pause"]
    with api.orchestrator():
        wait_for(lambda: _state(api, rid) == "paused", what="pause")
    assert api.get("vic", f"{V1}/rollouts/{rid}", params={"events": 1}).json()["events"][0][
        "kind"] == "rollout.paused"
