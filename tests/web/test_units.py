"""Pure parts of the dashboard: delivery metrics, SVG charts, the customer-file index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollwave.services import fleet_views
from rollwave.services.context import App
from rollwave.web import charts
from rollwave.web.delivery import RolloutFacts, delivery_metrics

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def facts(id_: str, state: str, *, days_ago: float = 1, minutes: float = 60,
          kind: str = "deploy", rolled_back: int = 0, parent: str | None = None
          ) -> RolloutFacts:
    start = NOW - timedelta(days=days_ago)
    return RolloutFacts(id=id_, kind=kind, state=state, created_at=start, started_at=start,
                        finished_at=start + timedelta(minutes=minutes), parent_id=parent,
                        instances_rolled_back=rolled_back)


def by_key(rows: list[RolloutFacts]) -> dict[str, float | None]:
    return {m.key: m.value for m in delivery_metrics(rows, NOW, days=28)}


def test_metrics_of_no_rollouts_say_nothing() -> None:
    metrics = delivery_metrics([], NOW)
    assert [m.key for m in metrics] == ["success_rate", "frequency", "mean_time_to_deploy",
                                        "customer_impact_rate", "rollback_rate"]
    assert all(m.good is None for m in metrics)
    assert [m.display() for m in metrics] == ["–", "0.0 per week", "–", "–", "–"]


def test_metrics_follow_the_definitions() -> None:
    rows = [
        facts("a", "succeeded", minutes=30),
        facts("b", "succeeded", minutes=90),
        facts("c", "succeeded", minutes=60, rolled_back=2),  # an instance failed verification
        facts("d", "rolled_back", minutes=20, rolled_back=5),
        facts("e", "succeeded", minutes=45),  # undone later by a rollback rollout
        facts("rb", "succeeded", kind="rollback", parent="e"),
        facts("f", "aborted", minutes=10),
        facts("g", "running"),  # not finished: counts for frequency only
        facts("old", "failed", days_ago=40),  # outside the window
    ]
    values = by_key(rows)
    finished = 6  # a b c d e f
    assert values["success_rate"] == pytest.approx(2 / finished)  # a, b
    assert values["customer_impact_rate"] == pytest.approx(2 / finished)  # c, d
    assert values["rollback_rate"] == pytest.approx(3 / finished)  # c, d, e
    assert values["frequency"] == pytest.approx(7 / 4)  # a..g over four weeks
    assert values["mean_time_to_deploy"] == pytest.approx((30 + 90 + 60 + 45) * 60 / 4)


def test_metric_verdicts_and_display() -> None:
    rows = [facts(str(i), "succeeded", days_ago=i / 2, minutes=40) for i in range(40)]
    metrics = {m.key: m for m in delivery_metrics(rows, NOW, days=28)}
    assert metrics["success_rate"].good is True
    assert metrics["success_rate"].display() == "100%"
    assert metrics["frequency"].good is True
    assert metrics["mean_time_to_deploy"].display() == "40 min"
    assert metrics["customer_impact_rate"].display() == "0%"


def test_line_chart_escapes_and_draws_threshold() -> None:
    svg = charts.line_chart({"<b>x</b>": [{"at": 5, "value": 0.01}, {"at": 10, "value": None},
                                          {"at": 15, "value": 0.2}]},
                            unit="ratio", threshold=0.05, title="<script>")
    assert svg.startswith('<svg class="chart"')
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "&lt;b&gt;x&lt;/b&gt;" in svg
    assert 'class="threshold"' in svg
    assert "limit 5%" in svg
    assert charts.line_chart({"x": [{"at": 1, "value": None}]}) == ""
    assert charts.line_chart({"x": [{"at": "bad", "value": float("nan")}]}) == ""


def test_gauge_and_stacked_bar() -> None:
    assert "#dc2626" in charts.gauge(0.2, 0.05, unit="ratio")
    assert charts.gauge(None, 1.0) == ""
    bar = charts.spark_bar({"succeeded": 3, "pending": 1}, ["succeeded", "pending"],
                           {"succeeded": "ok", "pending": "muted"})
    assert bar.count("<rect") == 2
    assert charts.spark_bar({}, [], {}) == ""


def test_index_rows_from_hostile_or_odd_documents() -> None:
    assert fleet_views.rows_from_document(None) == []
    assert fleet_views.rows_from_document({"id": "x"}) == []
    rows = fleet_views.rows_from_document({
        "id": "acme", "name": "<Acme>", "tier": 3, "tags": ["a", {"b": 1}, "c"],
        "instances": {"prod": {"environment": "production", "tags": ["x"]},
                      "broken": "not a mapping"}})
    assert [r.key for r in rows] == ["acme/prod"]
    assert rows[0].tier is None
    assert rows[0].tags == frozenset({"a", "c", "x"})
    assert rows[0].customer_name == "<Acme>"


def test_file_index_matches_the_loaded_workspace(tmp_path: Path) -> None:
    from tests.web.support import make_workspace

    root = make_workspace(tmp_path / "ws", customers=8)
    (root / "customers" / "big.yaml").write_bytes(b"x" * (fleet_views.MAX_FILE_BYTES + 1))
    (root / "customers" / "broken.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    quick = fleet_views.fleet_index(App(root=root))
    assert quick.source == "files"
    app = App(root=root)
    (root / "customers" / "big.yaml").unlink()
    (root / "customers" / "broken.yaml").unlink()
    app.workspace()
    full = fleet_views.fleet_index(app)
    assert full.source == "workspace"
    assert [(r.key, r.tier, r.region, r.tags, r.environment) for r in quick.rows] == \
        [(r.key, r.tier, r.region, r.tags, r.environment) for r in full.rows]
    assert quick.services == full.services == ("web",)
    assert quick.production_environments == full.production_environments


def test_file_index_sees_new_customers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rollwave.services import fleet_index
    from tests.web.support import make_workspace

    monkeypatch.setattr(fleet_index, "RESCAN_SECONDS", 0.0)
    root = make_workspace(tmp_path / "ws", customers=3)
    app = App(root=root)
    assert len(fleet_views.fleet_index(app).rows) == 3
    (root / "customers" / "newco.yaml").write_text(
        "id: newco\ninstances:\n  prod: {environment: production}\n", encoding="utf-8")
    assert "newco/prod" in fleet_views.fleet_index(app).keys


def test_a_check_charts_its_own_measure() -> None:
    from rollwave.web.rollout_pages import _check_series

    series = {"error_ratio": [1], "p95_latency_ms": [2], "p99_latency_ms": [3],
              "request_rate": [4]}
    assert list(_check_series(series, "error_ratio")) == ["error_ratio"]
    assert list(_check_series(series, "p95_latency_ms")) == ["p95_latency_ms", "p99_latency_ms"]
    assert _check_series(series, None) == series
    assert _check_series(series, "a query") == series
