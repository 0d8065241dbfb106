"""Run every decider on every scenario of a folder and report the scores.

    python -m bench.verify bench/verify/scenarios            # dev and held-out, all deciders
    python -m bench.verify PATH --deciders ours,argo --details

A scenario is replayed one analysis interval at a time from the first update: each decider
sees the series up to ``now`` and answers with a fleet action. Rolling back instances takes
them out of every later comparison and the rollout goes on; rolling back the release, a pause
or a promotion once every update has baked ends the run; a hold is remembered and the run
goes on (the source may come back). The decision at the end is scored against the file's
``expect`` block (see README.md for the metrics).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .deciders import Decision, all_deciders
from .scenario import Scenario, ScenarioError, load_folder

DEFAULT_PATH = Path(__file__).resolve().parent / "scenarios"
MAIN = ("ours", "argo", "kayenta")


class Decider(Protocol):
    name: str

    def decide(self, sc: Scenario, now: float, excluded: set[str]) -> Decision: ...


@dataclass
class RunResult:
    scenario: str
    split: str
    decider: str
    expected: str  # expected final decision
    expected_instances: tuple[str, ...]
    verdict: str  # expected verdict: healthy | regression | incident | no-data
    decision: str  # final decision
    rolled_back: tuple[str, ...]
    first_action: float | None  # intervals after onset of the first protective action
    correct: bool
    explanation: str
    trace: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rolled(self) -> bool:
        return self.decision in ("rollback-release", "rollback-instances")


def simulate(sc: Scenario, decider: Decider) -> RunResult:
    """Replay ``sc`` interval by interval with ``decider``; score the final decision."""
    step_i = sc.interval_seconds
    updates = sorted(sc.time(i.updated_at) for i in sc.instances if i.updated_at is not None)
    start, end = updates[0], sc.length * sc.step
    last_update = updates[-1]
    start_hook = getattr(decider, "start", None)
    if callable(start_hook):
        start_hook(sc)
    excluded: set[str] = set()
    rolled: list[str] = []
    trace: list[tuple[int, str]] = []
    final: Decision | None = None
    last: Decision | None = None
    first_protect: float | None = None
    first_hold: float | None = None
    k = 1
    while start + k * step_i <= end + 1e-9:
        now = start + k * step_i
        d = decider.decide(sc, now, excluded)
        trace.append((k, d.action))
        if d.action in ("rollback-release", "pause"):
            final = d
            first_protect = now if first_protect is None else first_protect
            break
        if d.action == "rollback-instances":
            new = [i for i in d.rollback if i not in excluded]
            excluded.update(new)
            rolled.extend(new)
            first_protect = now if first_protect is None else first_protect
        elif d.action == "hold" and first_hold is None:
            first_hold = now
        elif d.action == "promote" and now >= last_update:
            final = d
            break
        last = d
        k += 1
    if final is not None and final.action != "promote":
        decision = final.action
    elif rolled:
        decision = "rollback-instances"
    elif final is not None or (last is not None and last.action == "promote"):
        decision = "promote"
    else:
        decision = "hold"  # never allowed to promote by the end: no decision
    exp = sc.expect
    rolled_back = tuple(rolled) if decision == "rollback-instances" else ()
    correct = decision == exp.decision and (
        exp.decision != "rollback-instances" or set(rolled_back) == set(exp.instances)
    )
    onset = sc.time(exp.onset)
    when = first_hold if exp.decision == "hold" else first_protect
    first = None if when is None else max(math.ceil((when - onset) / step_i - 1e-9), 0)
    text = (final or last or Decision("continue", "none")).explanation
    return RunResult(
        scenario=sc.name,
        split=sc.split,
        decider=decider.name,
        expected=exp.decision,
        expected_instances=exp.instances,
        verdict=exp.verdict,
        decision=decision,
        rolled_back=rolled_back,
        first_action=first,
        correct=correct,
        explanation=text,
        trace=trace,
    )


def score(results: Sequence[RunResult]) -> dict[str, Any]:
    """Precision, recall, false rollbacks, blame accuracy and time to decision."""
    reg = [r for r in results if r.verdict == "regression"]
    tp = sum(1 for r in reg if r.rolled)
    fp_runs = [r for r in results if r.verdict != "regression" and r.rolled]
    healthy = [r for r in results if r.verdict == "healthy"]
    ttd = [r.first_action for r in reg if r.rolled and r.first_action is not None]
    ttd_ok = [r.first_action for r in reg if r.correct and r.first_action is not None]
    incidents = [r for r in results if r.verdict == "incident"]
    nodata = [r for r in results if r.verdict == "no-data"]
    return {
        "scenarios": len(results),
        "regressions": len(reg),
        "precision": tp / (tp + len(fp_runs)) if tp + len(fp_runs) else math.nan,
        "recall": tp / len(reg) if reg else math.nan,
        "false_rollbacks": len(fp_runs),
        "false_rollbacks_healthy": sum(1 for r in healthy if r.rolled),
        "healthy_promoted": sum(1 for r in healthy if r.decision == "promote"),
        "healthy": len(healthy),
        "blame_accuracy": sum(r.correct for r in results) / len(results) if results else math.nan,
        "blame_accuracy_regressions": (sum(r.correct for r in reg) / len(reg) if reg else math.nan),
        "incidents_paused": sum(1 for r in incidents if r.decision == "pause"),
        "incidents": len(incidents),
        "nodata_held": sum(1 for r in nodata if r.decision == "hold"),
        "nodata": len(nodata),
        "ttd_median": statistics.median(ttd) if ttd else math.nan,
        "ttd_mean": statistics.fmean(ttd) if ttd else math.nan,
        "ttd_correct_median": statistics.median(ttd_ok) if ttd_ok else math.nan,
    }


def _fmt(x: float, pct: bool = False) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{x:.2f}" if pct else f"{x:g}"


def table(scores: dict[str, dict[str, Any]]) -> str:
    head = (
        "| decider | scenarios | precision | recall | false rollbacks (healthy) | healthy promoted "
        "| correct blame | blame on regressions | incidents paused | no-data held "
        "| median TTD (intervals) | TTD of correct blame |"
    )
    lines = [head, "|" + "---|" * 12]
    for name, s in scores.items():
        lines.append(
            f"| {name} | {s['scenarios']} | {_fmt(s['precision'], True)} | "
            f"{_fmt(s['recall'], True)} | {s['false_rollbacks']} ({s['false_rollbacks_healthy']}) "
            f"| {s['healthy_promoted']}/{s['healthy']} | {_fmt(s['blame_accuracy'], True)} | "
            f"{_fmt(s['blame_accuracy_regressions'], True)} | "
            f"{s['incidents_paused']}/{s['incidents']} | {s['nodata_held']}/{s['nodata']} | "
            f"{_fmt(s['ttd_median'])} | {_fmt(s['ttd_correct_median'])} |"
        )
    return "\n".join(lines)


def details(results: Sequence[RunResult]) -> str:
    lines = ["| scenario | decider | expected | decision | TTD | ok |", "|---|---|---|---|---|---|"]
    for r in results:
        dec = r.decision + (f" {list(r.rolled_back)}" if r.rolled_back else "")
        exp = r.expected + (f" {list(r.expected_instances)}" if r.expected_instances else "")
        ttd = "" if r.first_action is None else f"{r.first_action:g}"
        ok = "yes" if r.correct else "NO"
        lines.append(f"| {r.scenario} | {r.decider} | {exp} | {dec} | {ttd} | {ok} |")
    return "\n".join(lines)


def run(paths: Sequence[Path], names: Sequence[str]) -> tuple[list[RunResult], list[Scenario]]:
    scenarios: list[Scenario] = []
    for p in paths:
        scenarios.extend(load_folder(p))
    results: list[RunResult] = []
    for name in names:
        deciders = all_deciders()
        if name not in deciders:
            raise SystemExit(f"unknown decider {name!r}; choose from {', '.join(deciders)}")
        d: Decider = deciders[name]  # type: ignore[assignment]
        results.extend(simulate(sc, d) for sc in scenarios)
    return results, scenarios


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.verify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[DEFAULT_PATH],
        help="scenario files or folders (default: bench/verify/scenarios)",
    )
    ap.add_argument(
        "--deciders",
        default="ours,argo,argo-fl3,kayenta,kayenta-self",
        help="comma-separated: ours, argo, argo-fl3, kayenta, kayenta-self",
    )
    ap.add_argument("--details", action="store_true", help="one line per scenario and decider")
    ap.add_argument("--explain", action="store_true", help="print ours' explanation per scenario")
    ap.add_argument("--json", type=Path, help="write every result as JSON here")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.deciders.split(",") if n.strip()]
    t0 = time.perf_counter()
    try:
        results, scenarios = run(args.paths, names)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    splits = sorted({r.split for r in results})
    groups = [(s, [r for r in results if r.split == s]) for s in splits]
    if len(splits) > 1:
        groups.append(("all", results))
    for split, rs in groups:
        n = len({(r.split, r.scenario) for r in rs})
        print(f"\n## {split} ({n} scenarios)\n")
        print(table({name: score([r for r in rs if r.decider == name]) for name in names}))
    if args.details:
        print("\n## details\n")
        print(details(results))
    if args.explain:
        print("\n## explanations (ours)\n")
        for r in results:
            if r.decider == "ours":
                print(f"- {r.scenario}: {r.decision}: {r.explanation}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, default=str))
    print(
        f"\n{len(scenarios)} scenarios, {len(names)} deciders, {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return 0
