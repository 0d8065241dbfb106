"""The dashboard in a real browser: login and every page, live progress over SSE, an approval
by a second user, an abort, and the fleet matrix at 10,000 customers × 5 services."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rollwave.core.states import RolloutState
from rollwave.flags.model import Flag
from rollwave.flags.store import InMemoryFlagStore
from rollwave.services import releases, rollouts
from rollwave.services.context import App
from rollwave.web import misc_pages
from tests.browser.conftest import login, serve, shot
from tests.orchestration.helpers import Orchestrator, wait_for
from tests.web.conftest import Dash
from tests.web.support import ChartingVerifier, add_users, make_workspace

pytestmark = pytest.mark.browser


def _flags() -> InMemoryFlagStore:
    store = InMemoryFlagStore()
    store.put_flag(Flag.model_validate({
        "key": "new-checkout", "description": "The new checkout flow", "owner": "payments",
        "enabled": True, "tags": ["checkout"],
        "rules": [{"id": "acme-beta", "when": [{"attribute": "customer", "op": "in",
                                                "values": ["acme", "initech"]}],
                   "serve": "true"}],
        "fallthrough": {"split": {"true": 10, "false": 90}},
        "rollout_plan": {"variant": "true", "steps": [{"percentage": 10}, {"percentage": 50},
                                                       {"percentage": 100, "after": "1d"}]}}),
        actor="dora", reason="PAY-12: beta for acme")
    store.put_flag(Flag.model_validate({"key": "dark-mode", "enabled": False}), actor="ann",
                   reason="not yet")
    return store


def _state(app: App, rollout_id: str) -> RolloutState:
    return rollouts.status(app, rollout_id).rollout.state


def test_login_and_every_page(browser: Any, dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _flags()
    monkeypatch.setattr(misc_pages, "provider", lambda app: store)
    with serve(dash.root) as base:
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(f"{base}/fleet")
        assert "/login" in page.url
        shot(page, "01-login")
        page.fill("input[name=username]", "adam")
        page.fill("input[name=password]", "wrong password here")
        page.click("button[type=submit]")
        assert "wrong user name or password" in page.inner_text("[role=alert]")
        login(page, base, "adam")
        page.goto(f"{base}/")
        assert page.locator("[data-metric]").count() == 5
        shot(page, "02-overview")
        for name, path, ready in [
            ("03-rollouts", "/rollouts", "table.list"),
            ("04-rollout-failed-instance", f"/rollouts/{dash.failed}", "table.targets"),
            ("05-evidence", f"/rollouts/{dash.failed}/evidence/c02/prod", "svg.chart"),
            ("06-rollout-waiting-approval", f"/rollouts/{dash.waiting}", "[data-testid=waiting]"),
            ("07-fleet", "/fleet", "table.matrix"),
            ("08-customer", "/customers/c01", "[data-testid=config]"),
            ("09-releases", "/releases", "table.list"),
            ("10-release", f"/releases/{dash.release}", "[data-testid=preview]"),
            ("11-flags", "/flags", "table.list"),
            ("12-flag", "/flags/new-checkout", "ol.steps"),
            ("13-audit", "/audit", "table.timeline"),
            ("14-customer-hostile-name", "/customers/evil", "h1"),
        ]:
            page.goto(base + path)
            page.wait_for_selector(ready)
            shot(page, name)
        # the evidence panel opens in place on the rollout page (htmx)
        page.goto(f"{base}/rollouts/{dash.failed}")
        page.click("tr[data-instance='c02/prod'] a:has-text('evidence')")
        page.wait_for_selector("#evidence svg.chart")
        assert page.locator("#evidence svg.chart").count() == 2
        # hostile text stayed text: no dialog opened, the name shows literally
        page.goto(f"{base}/customers/evil")
        assert "<script>alert('pwn')</script>" in page.inner_text("h1")
        page.close()


def test_live_progress_without_reload(browser: Any, tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=7, delay=0.8, gate=False)
    app = App.open(root, actor="dora")
    add_users(app)
    release = releases.create_release(app, {"web": "2.0"})
    record = rollouts.start(app, release.id)
    with serve(root) as base, Orchestrator(app, ChartingVerifier()):
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        login(page, base, "vera")
        page.goto(f"{base}/rollouts/{record.id}")
        page.evaluate("window.__stayed = 42")
        page.wait_for_selector("[data-testid=live]")
        rest = page.locator("tr[data-wave='1'] [data-testid=wave-done]")
        page.wait_for_function(
            "() => { const e = document.querySelector(\"tr[data-wave='1'] "
            "[data-testid=wave-done]\"); return e && parseInt(e.textContent) >= 2; }",
            timeout=60_000)
        shot(page, "15-rollout-live-progress")
        assert page.evaluate("window.__stayed") == 42  # updated in place, never reloaded
        page.wait_for_selector("h1 .badge.ok", timeout=60_000)  # "succeeded"
        assert rest.inner_text() == "6/6"
        assert page.evaluate("window.__stayed") == 42
        assert page.locator("#timeline tr").count() > 10
        page.wait_for_selector("[data-testid=live]", state="detached")  # the stream closed
        shot(page, "16-rollout-live-finished")
        page.close()
    assert _state(app, record.id) == RolloutState.SUCCEEDED
    app.close()


def test_second_user_approves_what_the_requester_cannot(browser: Any, tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=5, delay=0.2, gate=True, parallelism=2)
    app = App.open(root, actor="dora")
    add_users(app)
    release = releases.create_release(app, {"web": "3.0"})
    record = rollouts.start(app, release.id)
    with serve(root) as base, Orchestrator(app, ChartingVerifier()):
        wait_for(lambda: _state(app, record.id) == RolloutState.WAITING, what="approval gate")
        requester = browser.new_context(viewport={"width": 1360, "height": 900})
        page = requester.new_page()
        login(page, base, "dora")
        page.goto(f"{base}/rollouts/{record.id}")
        approve = page.locator("button[data-action=approve]")
        assert approve.is_disabled()
        assert "another approver" in (approve.get_attribute("title") or "")
        shot(page, "17-approval-requester-cannot")
        requester.close()

        approver = browser.new_context(viewport={"width": 1360, "height": 900})
        page = approver.new_page()
        login(page, base, "ann")
        page.goto(f"{base}/")
        assert record.id in page.inner_text("body")
        page.goto(f"{base}/rollouts/{record.id}")
        page.click("a[data-action=approve]")
        page.wait_for_selector("[data-testid=confirm] textarea[name=reason]")
        page.fill("textarea[name=reason]", "canary looks healthy")
        shot(page, "18-approval-confirm")
        page.click("[data-testid=confirm-approve]")
        page.wait_for_selector("[data-testid=flash]")
        page.wait_for_selector("h1 .badge.ok", timeout=60_000)
        shot(page, "19-approval-done")
        approver.close()
    assert _state(app, record.id) == RolloutState.SUCCEEDED
    with app.db().read() as conn:
        from rollwave.storage.events import list_events

        approvals = list_events(conn, rollout_id=record.id, kind_prefix="control.approve")
    assert [e.actor for e in approvals] == ["ann"]
    app.close()


def test_abort_with_a_reason(browser: Any, tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", customers=8, delay=1.0, gate=False)
    app = App.open(root, actor="dora")
    add_users(app)
    release = releases.create_release(app, {"web": "4.0"})
    record = rollouts.start(app, release.id)
    with serve(root) as base, Orchestrator(app, ChartingVerifier()):
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        login(page, base, "dora")
        page.goto(f"{base}/rollouts/{record.id}")
        page.click("a[data-action=abort]")
        page.wait_for_selector("[data-testid=confirm]")
        page.fill("textarea[name=reason]", "INC-7: error budget burning elsewhere")
        shot(page, "20-abort-confirm")
        page.click("[data-testid=confirm-abort]")
        page.wait_for_selector("[data-testid=flash]")
        page.wait_for_function("() => document.querySelector('h1 .badge')"
                               ".textContent.includes('aborted')", timeout=60_000)
        assert "INC-7" in page.inner_text("#timeline")
        shot(page, "21-aborted")
        page.close()
    status = rollouts.status(app, record.id)
    assert status.rollout.state == RolloutState.ABORTED
    assert status.counts.get("pending", 0) + status.counts.get("skipped", 0) > 0
    app.close()


def test_matrix_at_ten_thousand_customers(browser: Any, tmp_path: Path) -> None:
    from tests.web.seed import seed_large_fleet

    root = seed_large_fleet(tmp_path / "big", 10_000)
    app = App.open(root, actor="seed")
    add_users(app)
    app.close()
    with serve(root) as base:
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        login(page, base, "vera")
        page.goto(f"{base}/fleet")  # warms the index (first read of 10,000 files)
        page.wait_for_selector("table.matrix tbody tr")
        started = time.perf_counter()
        page.goto(f"{base}/fleet")
        page.wait_for_selector("table.matrix tbody tr")
        ready = time.perf_counter() - started
        assert page.locator("table.matrix tbody tr").count() == 100
        assert page.inner_text("[data-testid=matrix-total]") == "10,000"
        assert page.locator("table.matrix thead th").count() == 3 + 5
        shot(page, "22-fleet-10k")
        started = time.perf_counter()
        page.fill("[data-testid=fleet-search]", "cust04217")
        page.wait_for_function("() => document.querySelector('[data-testid=matrix]')"
                               ".dataset.total === '1'")
        found = time.perf_counter() - started
        row = page.locator("tr[data-instance='cust04217/prod']")
        assert row.locator("td.cell").count() == 5
        assert row.locator("td.cell").first.inner_text() in ("1.0", "1.1")
        shot(page, "23-fleet-10k-search")
        page.goto(f"{base}/fleet?health=attention&tier=enterprise")
        page.wait_for_selector("[data-testid=matrix]")
        page.click("[data-testid=next-page]")
        page.wait_for_function("() => location.search.includes('page=2')")
        print(f"\nmatrix 10,000 × 5: page ready in {ready:.3f}s, search in {found:.3f}s")
        assert ready < 10  # generous: timing belongs to bench/dashboard, this catches stalls
        page.close()
