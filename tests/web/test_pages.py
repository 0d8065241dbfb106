"""Every dashboard page over a real (small) fleet: status, login, escaping, CSRF, roles."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from rollwave.api.app import create_app
from rollwave.services.context import App
from rollwave.storage.events import list_events
from tests.web.conftest import HOSTILE, Dash
from tests.web.support import PASSWORD, login

HTML = {"accept": "text/html"}


def pages(dash: Dash) -> list[str]:
    return ["/", "/rollouts", "/rollouts?q=1.1", "/rollouts?state=succeeded",
            f"/rollouts/{dash.done}", f"/rollouts/{dash.failed}", f"/rollouts/{dash.waiting}",
            f"/rollouts/{dash.failed}?state=rolled_back",
            f"/rollouts/{dash.failed}/evidence/c02/prod", f"/rollouts/{dash.done}/live",
            f"/rollouts/{dash.waiting}/confirm/approve", "/fleet", "/fleet?q=c01",
            "/fleet?tier=enterprise&health=attention", "/fleet?drift=1", "/fleet?page=2",
            "/customers/c01", "/customers/c01/config", "/customers/evil", "/releases",
            f"/releases/{dash.release}", f"/releases/{dash.release}/preview", "/flags",
            "/audit", "/audit?q=approve", "/audit?kind=rollout.", "/static/app.css",
            "/static/vendor/htmx.org/htmx.min.js"]


def test_every_page_renders_for_a_logged_in_user(web: TestClient, dash: Dash) -> None:
    login(web, "adam")
    for path in pages(dash):
        response = web.get(path, headers=HTML)
        assert response.status_code == 200, (path, response.text[:400])
        if path.startswith("/static"):
            assert response.headers["x-content-type-options"] == "nosniff"
            continue
        assert "Content-Security-Policy" in response.headers, path
        assert "<script>alert" not in response.text, path


def test_pages_need_a_login(web: TestClient, dash: Dash) -> None:
    for path in pages(dash):
        if path.startswith("/static"):
            continue
        response = web.get(path, headers=HTML, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    assert web.get("/api/v1/fleet").status_code == 401
    assert web.get("/api/v1/customers/c01").status_code == 401


def test_login_sets_a_safe_cookie_and_logout_ends_the_session(web: TestClient) -> None:
    page = web.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = web.post("/login", data={"username": "vera", "password": PASSWORD,
                                        "csrf_token": token.group(1), "next": "//evil.example"},
                        follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"  # never an off-site redirect
    cookie = response.headers["set-cookie"].lower()
    assert "rollwave_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http in tests; https gets Secure
    home = web.get("/", headers=HTML)
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', home.text).group(1)  # type: ignore[union-attr]
    assert web.post("/logout", data={"csrf_token": csrf}, follow_redirects=False) \
        .status_code == 303
    assert web.get("/", headers=HTML, follow_redirects=False).status_code == 303


def test_secure_cookie_over_https(dash: Dash) -> None:
    ctx = App.open(dash.root)
    with TestClient(create_app(ctx), base_url="https://dash.example") as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        response = client.post("/login", data={"username": "vera", "password": PASSWORD,
                                               "csrf_token": token}, follow_redirects=False)
        assert "secure" in response.headers["set-cookie"].lower()
    ctx.close()


def test_wrong_password_and_forged_login_are_refused(web: TestClient) -> None:
    page = web.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    wrong = web.post("/login", data={"username": "vera", "password": "nope nope nope",
                                     "csrf_token": token})
    assert wrong.status_code == 401
    assert "wrong user name or password" in wrong.text
    forged = web.post("/login", data={"username": "vera", "password": PASSWORD,
                                      "csrf_token": "forged"})
    assert forged.status_code == 403
    assert "rollwave_session" not in web.cookies


def test_hostile_names_and_notes_render_as_text(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    customer = web.get("/customers/evil", headers=HTML).text
    assert "&lt;script&gt;alert(" in customer
    assert "<script>alert" not in customer
    note_page = web.get("/customers/c01", headers=HTML).text
    assert "&lt;img src=x onerror=alert(1)&gt;" in note_page
    assert "{{ 7*7 }}" in note_page
    assert "call 49" not in note_page  # not a template
    matrix = web.get("/fleet?q=evil", headers=HTML).text
    assert "<script>alert" not in matrix
    assert "evil/prod" in matrix
    release = web.get("/releases", headers=HTML).text
    assert "first &lt;b&gt;release&lt;/b&gt;" in release
    assert HOSTILE not in web.get("/audit", headers=HTML).text


def test_state_changes_without_the_csrf_token_are_refused(web: TestClient, dash: Dash) -> None:
    login(web, "ann")
    url = f"/rollouts/{dash.waiting}/control/approve"
    missing = web.post(url, data={"confirmed": "yes"})
    assert missing.status_code == 403
    assert "CSRF" in missing.text
    wrong = web.post(url, data={"confirmed": "yes", "csrf_token": "x" * 32})
    assert wrong.status_code == 403
    header = web.post(url, data={"confirmed": "yes"}, headers={"X-CSRF-Token": "nope"})
    assert header.status_code == 403
    note = web.post("/customers/c01/notes", data={"body": "hi"})
    assert note.status_code == 403
    assert web.post("/logout", follow_redirects=False).status_code == 403


def test_a_viewer_sees_no_controls_and_cannot_act(web: TestClient, dash: Dash) -> None:
    csrf = login(web, "vera")
    page = web.get(f"/rollouts/{dash.waiting}", headers=HTML).text
    assert 'href="/rollouts/' + dash.waiting + '/confirm/' not in page
    assert "needs the approve permission" in page
    assert 'action="/customers/c01/notes"' not in web.get("/customers/c01", headers=HTML).text
    refused = web.post(f"/rollouts/{dash.waiting}/control/abort",
                       data={"confirmed": "yes", "reason": "x", "csrf_token": csrf})
    assert refused.status_code == 403


def test_the_requester_cannot_approve_but_another_approver_can(web: TestClient,
                                                                dash: Dash) -> None:
    csrf = login(web, "dora")
    page = web.get(f"/rollouts/{dash.waiting}", headers=HTML).text
    assert "you requested this production rollout" in page
    assert f'/rollouts/{dash.waiting}/confirm/abort' in page  # a deployer may abort
    refused = web.post(f"/rollouts/{dash.waiting}/control/approve",
                       data={"confirmed": "yes", "csrf_token": csrf})
    assert refused.status_code == 403
    assert "separation of duties" in refused.text
    web.cookies.clear()
    csrf = login(web, "ann")
    page = web.get(f"/rollouts/{dash.waiting}", headers=HTML).text
    assert f'href="/rollouts/{dash.waiting}/confirm/approve"' in page
    assert "/confirm/abort" not in page  # an approver may not abort
    unconfirmed = web.post(f"/rollouts/{dash.waiting}/control/approve",
                           data={"csrf_token": csrf})
    assert unconfirmed.status_code == 422
    done = web.post(f"/rollouts/{dash.waiting}/control/approve",
                    data={"confirmed": "yes", "csrf_token": csrf, "reason": "looks good"},
                    follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"].endswith("?done=approve")
    with dash.app.db().read() as conn:
        approvals = list_events(conn, rollout_id=dash.waiting, kind_prefix="control.approve")
    assert approvals
    assert approvals[-1].actor == "ann"
    assert "looks good" in approvals[-1].message


def test_abort_needs_a_reason(web: TestClient, dash: Dash) -> None:
    csrf = login(web, "dora")
    response = web.post(f"/rollouts/{dash.waiting}/control/abort",
                        data={"confirmed": "yes", "csrf_token": csrf, "reason": " "},
                        headers=HTML)
    assert response.status_code == 422
    assert "needs a reason" in response.text


def test_missing_things_are_404_pages(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    for path in ("/rollouts/ro-nope", "/customers/nobody", "/releases/none",
                 f"/rollouts/{dash.done}/evidence/nobody/prod", "/static/../../etc/passwd",
                 "/static/vendor/nothing.js"):
        response = web.get(path, headers=HTML)
        assert response.status_code == 404, path
    bad = web.get("/rollouts/ro-nope")  # an API client gets JSON
    assert bad.status_code == 404
    assert bad.json()["message"]


def test_evidence_has_charts_of_each_check(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    page = web.get(f"/rollouts/{dash.failed}/evidence/c02/prod", headers=HTML).text
    assert page.count('<svg class="chart"') == 2
    assert "limit 5%" in page  # the threshold line of the error ratio chart
    assert "rolled back" in page


def test_the_stream_of_a_finished_rollout_ends_at_once(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    with web.stream("GET", f"/rollouts/{dash.done}/stream?after=0") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert "event: progress" in body
    assert "event: timeline" in body
    assert body.rstrip().endswith("event: done\ndata:")


def test_fleet_matrix_filters(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    page = web.get("/fleet?q=c02", headers=HTML).text
    assert 'data-instance="c02/prod"' in page
    assert 'data-instance="c01/prod"' not in page
    assert "1.0" in page  # c02 was rolled back to 1.0: it drifts from 1.1
    drift = web.get("/fleet?drift=1", headers=HTML).text
    assert 'data-instance="c02/prod"' in drift
    assert 'data-instance="c01/prod"' not in drift
    tiers = web.get("/fleet?tier=enterprise", headers=HTML).text
    assert 'data-instance="c01/prod"' in tiers
    assert 'data-instance="c02/prod"' not in tiers
    expr = web.get("/fleet?match=tier+%3D%3D+standard+and+not+internal", headers=HTML).text
    assert 'data-instance="c02/prod"' in expr
    assert 'data-instance="internal/prod"' not in expr
    bad = web.get("/fleet?match=tier+%3D%3D", headers=HTML)
    assert bad.status_code == 200
    assert "tag expression" in bad.text
    partial = web.get("/fleet?q=c0", headers={**HTML, "HX-Request": "true",
                                               "HX-Target": "matrix"}).text
    assert partial.startswith('<section id="matrix"')


def test_fleet_api_pages_and_filters(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    first = web.get("/api/v1/fleet?per_page=3").json()
    assert first["total"] == 7
    assert first["pages"] == 3
    assert len(first["rows"]) == 3
    assert first["services"] == ["web"]
    assert first["reference_versions"] == {"web": "1.1"}
    last = web.get("/api/v1/fleet?per_page=3&page=3").json()
    assert len(last["rows"]) == 1
    drift = web.get("/api/v1/fleet?drift=true").json()
    # c02 was rolled back to 1.0; internal already runs 1.2 (wave 1 of the waiting rollout)
    assert {r["instance"]: r["services"]["web"]["version"] for r in drift["rows"]} == \
        {"c02/prod": "1.0", "internal/prod": "1.2"}
    assert web.get("/api/v1/fleet?match=(((").status_code == 422
    assert web.get("/api/v1/fleet?per_page=0").status_code == 422
    customer = web.get("/api/v1/customers/c02").json()
    assert customer["instances"][0]["services"]["web"]["version"] == "1.0"
    assert any(d["state"] == "rolled_back" for d in customer["deployments"])
    assert web.get("/api/v1/customers/nobody").status_code == 404


def test_notes_can_be_added_by_a_deployer(web: TestClient, dash: Dash) -> None:
    csrf = login(web, "dora")
    response = web.post("/customers/c03/notes", data={"body": "migrates on Friday",
                                                      "instance": "prod", "csrf_token": csrf},
                        follow_redirects=False)
    assert response.status_code == 303
    assert "migrates on Friday" in web.get("/customers/c03", headers=HTML).text


@pytest.mark.parametrize("user", ["vera", "dora", "ann", "adam"])
def test_overview_shows_metrics_and_the_pending_approval(web: TestClient, dash: Dash,
                                                        user: str) -> None:
    login(web, user)
    page = web.get("/", headers=HTML).text
    for key in ("success_rate", "frequency", "mean_time_to_deploy", "customer_impact_rate",
                "rollback_rate"):
        assert f'data-metric="{key}"' in page
    assert dash.waiting in page
    assert "Pending approvals" in page
    can_approve = f'href="/rollouts/{dash.waiting}/confirm/approve"' in page
    assert can_approve == (user in ("ann", "adam"))


def test_flag_pages_with_a_store(web: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from rollwave.flags.model import Flag
    from rollwave.flags.store import InMemoryFlagStore
    from rollwave.web import misc_pages

    store = InMemoryFlagStore()
    store.put_flag(Flag.model_validate({
        "key": "new-checkout", "description": "<i>checkout</i>", "enabled": True,
        "rules": [{"id": "beta", "when": [{"attribute": "customer", "op": "in",
                                           "values": ["acme"]}], "serve": "true"}],
        "rollout_plan": {"variant": "true", "steps": [{"percentage": 25},
                                                       {"percentage": 100}]}}),
        actor="dora", reason="PAY-12 beta")
    monkeypatch.setattr(misc_pages, "provider", lambda app: store)
    login(web, "vera")
    listing = web.get("/flags", headers=HTML).text
    assert 'href="/flags/new-checkout"' in listing
    assert "&lt;i&gt;checkout&lt;/i&gt;" in listing
    assert "25.0%" in listing
    assert web.get("/flags?q=nothing", headers=HTML).text.count("/flags/new-checkout") == 0
    detail = web.get("/flags/new-checkout", headers=HTML).text
    assert "<code>customer</code>" in detail
    assert "PAY-12 beta" in detail
    assert "<strong>100.0%</strong>" in detail
    assert web.get("/flags/none", headers=HTML).status_code == 404


def test_flag_pages_explain_a_missing_store(web: TestClient,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from rollwave.web import misc_pages

    monkeypatch.setattr(misc_pages, "provider", lambda app: None)
    login(web, "vera")
    for path in ("/flags", "/flags/anything"):
        page = web.get(path, headers=HTML)
        assert page.status_code == 200
        assert 'data-testid="no-store"' in page.text


def test_flag_pages_read_the_database_store(web: TestClient, dash: Dash) -> None:
    from rollwave.flags.dbstore import store_for
    from rollwave.flags.model import Flag

    store_for(dash.app).put_flag(Flag.model_validate({"key": "db-flag", "enabled": False}),
                                 actor="dora", reason="from the database")
    login(web, "vera")
    assert 'href="/flags/db-flag"' in web.get("/flags", headers=HTML).text
    assert "from the database" in web.get("/flags/db-flag", headers=HTML).text


def test_a_reconnecting_stream_resumes_after_the_last_event(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    with web.stream("GET", f"/rollouts/{dash.done}/stream?after=0") as response:
        body = "".join(response.iter_text())
    last = max(int(line[4:]) for line in body.splitlines() if line.startswith("id: "))
    with web.stream("GET", f"/rollouts/{dash.done}/stream?after=0",
                    headers={"Last-Event-ID": str(last)}) as response:
        again = "".join(response.iter_text())
    assert "event: timeline" not in again
    assert "event: done" in again


def test_customer_config_shows_where_each_value_comes_from(web: TestClient) -> None:
    login(web, "vera")
    page = web.get("/customers/c01/config", headers=HTML).text
    assert "<code>feature.beta</code>" in page
    assert "config/web/defaults.yaml:" in page
    assert "customers/c01.yaml:" in page
    assert 'class="won"' in page
    assert 'class="lost"' in page


def test_release_page_lists_its_rollouts_with_progress(web: TestClient, dash: Dash) -> None:
    login(web, "vera")
    page = web.get("/releases", headers=HTML).text
    first = re.findall(r'href="/releases/([^"]+)"', page)[-1]
    detail = web.get(f"/releases/{first}", headers=HTML).text
    assert dash.done in detail
    assert "7/7" in detail


def test_secure_cookie_behind_a_tls_proxy(dash: Dash) -> None:
    ctx = App.open(dash.root)
    api = create_app(ctx)
    api.state.secure_cookies = True  # rollwave serve --secure-cookies
    with TestClient(api, base_url="http://testserver") as client:
        page = client.get("/login")
        assert "secure" in page.headers["set-cookie"].lower()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        response = client.post("/login", data={"username": "vera", "password": PASSWORD,
                                               "csrf_token": token}, follow_redirects=False)
        assert "secure" in response.headers["set-cookie"].lower()
    ctx.close()
