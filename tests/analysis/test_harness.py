"""The evaluation harness: scenario format, replay and scoring, and a CI subset of scenarios.

The full table (80 scenarios, every decider) is a benchmark: ``python -m bench.verify``
(bench/verify/RESULTS.md). Here the engine must get a fixed subset right, one scenario of
each kind, so a change that breaks a kind fails CI.
"""

from pathlib import Path

import pytest
import yaml
from bench.verify.deciders import Decision, Ours
from bench.verify.run import score, simulate
from bench.verify.scenario import REPO_ROOT, Scenario, ScenarioError, load, shared_data_dir

SCENARIOS = REPO_ROOT / "bench" / "verify" / "scenarios"
DATA = shared_data_dir()

CI_SUBSET = [
    "dev/healthy-noisy-01",  # good release, synthetic noise
    "heldout/healthy-hard-chronic-customer",  # a customer failing its SLO before and after
    "dev/release-regression-01",  # errors everywhere -> roll back the release
    "heldout/customer-regression-two-instances",  # one customer's two instances
    "dev/leak-release-01",  # slow memory leak
    "dev/low-traffic-errors",  # a small regression on a 15 req/min instance
    "dev/infra-shared-database-errors",  # incident on old and new versions -> pause
    "dev/outage-to-end-01",  # metrics source down -> hold
    "heldout/missing-metric-after-update",  # the new version stops exporting -> hold
]


@pytest.mark.parametrize("name", CI_SUBSET)
def test_engine_gets_the_ci_subset_right(name: str) -> None:
    path = SCENARIOS / f"{name}.yaml"
    if "shared/data" in path.read_text() and not DATA.is_dir():
        pytest.skip(f"{name} reads ../shared/data, which is not next to this checkout")
    sc = load(path)
    result = simulate(sc, Ours())
    assert result.correct, (
        f"{name}: expected {result.expected} {list(result.expected_instances)}, got "
        f"{result.decision} {list(result.rolled_back)}: {result.explanation}"
    )
    if sc.expect.verdict == "regression":
        assert result.first_action is not None
        assert result.first_action <= 3


def minimal(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": "tiny", "length": 40, "analysis_interval": 5, "bake": 2, "baseline": 10,
        "metrics": {"requests": {"kind": "counter"}, "errors": {"kind": "counter"}},
        "slo": {"errors": "errors", "total": "requests"},
        "instances": [
            {"id": "a/p", "customer": "a", "updated_at": 20,
             "series": {"requests": [100] * 40, "errors": [1] * 40}},
        ],
        "expect": {"verdict": "healthy", "blame": "none"},
    }
    doc.update(over)
    return doc


def write(tmp_path: Path, doc: dict[str, object]) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_inline_series_and_faults_build(tmp_path: Path) -> None:
    inst = {"id": "a/p", "customer": "a", "updated_at": 20,
            "series": {"requests": [100] * 40, "errors": {"synth": {"ratio_of": "requests",
                                                                     "p": 0.01}}},
            "faults": [{"metric": "requests", "kind": "multiply", "factor": 2, "from": 30},
                       {"metric": "all", "kind": "outage", "from": 35, "to": 37}]}
    sc = load(write(tmp_path, minimal(instances=[inst], seed=3)))
    req = sc.instances[0].series["requests"]
    assert req.values[29] == 100
    assert req.values[30] == 200
    assert req.errors[35]
    assert req.errors[36]
    assert not req.errors[37]
    assert sc.expect.decision == "promote"
    assert sc.expect.onset == 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expect": {"verdict": "healthy", "blame": "release"}}, "verdict/blame"),
        ({"expect": {"verdict": "regression", "blame": "customer"}}, "must list"),
        ({"expect": {"verdict": "regression", "blame": "customer", "instances": ["x/y"]}},
         "unknown instances"),
        ({"length": None}, "length"),
    ],
)
def test_format_errors_say_what_is_wrong(tmp_path: Path, change: dict[str, object],
                                         message: str) -> None:
    doc = minimal(**change)
    if doc.get("length") is None:
        del doc["length"]
        message = "missing key 'length'"
    with pytest.raises(ScenarioError, match=message):
        load(write(tmp_path, doc))


def test_missing_data_file_is_reported(tmp_path: Path) -> None:
    inst = {"id": "a/p", "updated_at": 20,
            "series": {"requests": {"file": "../nowhere.csv", "column": "value"}}}
    with pytest.raises(ScenarioError, match="not found"):
        load(write(tmp_path, minimal(instances=[inst])))


class Scripted:
    """A decider that plays a fixed list of decisions."""

    def __init__(self, name: str, decisions: list[Decision]) -> None:
        self.name = name
        self.decisions = decisions
        self.calls: list[set[str]] = []

    def decide(self, sc: Scenario, now: float, excluded: set[str]) -> Decision:
        self.calls.append(set(excluded))
        return self.decisions[min(len(self.calls) - 1, len(self.decisions) - 1)]


def test_replay_rolls_back_instances_then_goes_on(tmp_path: Path) -> None:
    sc = load(write(tmp_path, minimal(expect={"verdict": "regression", "blame": "customer",
                                               "instances": ["a/p"]})))
    d = Scripted("s", [Decision("continue", "none"),
                       Decision("rollback-instances", "customer", ("a/p",)),
                       Decision("promote", "none")])
    r = simulate(sc, d)
    assert r.decision == "rollback-instances"
    assert r.correct
    assert r.first_action == 2  # decided at the end of the second interval after onset
    assert d.calls[2] == {"a/p"}  # the rolled-back instance is out of later comparisons


def test_replay_hold_to_the_end_is_no_decision(tmp_path: Path) -> None:
    sc = load(write(tmp_path, minimal(expect={"verdict": "no-data", "blame": "unknown"})))
    r = simulate(sc, Scripted("s", [Decision("hold", "unknown")]))
    assert r.decision == "hold"
    assert r.correct
    assert r.first_action == 1
    never = simulate(sc, Scripted("s", [Decision("continue", "none")]))
    assert never.decision == "hold"


def test_scores() -> None:
    from bench.verify.run import RunResult

    def rr(verdict: str, decision: str, correct: bool, ttd: float | None = None) -> RunResult:
        return RunResult("s", "dev", "d", "", (), verdict, decision, (), ttd, correct, "")

    s = score([
        rr("regression", "rollback-release", True, 1),
        rr("regression", "rollback-instances", False, 3),
        rr("regression", "promote", False),
        rr("healthy", "rollback-instances", False),
        rr("healthy", "promote", True),
        rr("incident", "pause", True),
    ])
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["false_rollbacks"] == 1
    assert s["false_rollbacks_healthy"] == 1
    assert s["blame_accuracy"] == pytest.approx(3 / 6)
    assert s["ttd_median"] == 2
