"""Write the labeled scenario files of bench/verify/scenarios/{dev,heldout}.

    python -m bench.verify.generate            # rewrites both folders, deterministically

Two splits that share no seed and no data file segment:

* ``dev``: synthetic fleets from seeds 1-99; Nezha OnlineBoutique pods of 2022-08-22;
  NAB files of set A.
* ``heldout``: synthetic fleets from seeds 101-199; Nezha OnlineBoutique pods of 2022-08-23
  and TrainTicket pods of 2023-01-29/30 (a different system, low traffic); NAB files of set B.

The engine's parameters were chosen on ``dev`` only; ``heldout`` was generated once and
reported as it came out.

Real series are referenced (file + column + offset), never copied. NAB segments avoid the
labeled anomaly windows (``labels/combined_windows.json``) unless a labeled anomaly is the
point (the ``shape`` faults of infrastructure incidents and real-shaped regressions, taken
from labeled sustained shifts). Nezha segments start after the last injected fault of the
day. Every fleet-wide threshold of the Argo baseline is what an operator would pick from a
dashboard: 1.5 x the fleet's pooled 95th percentile before the rollout (5 % for the error
ratio, Argo's own success-rate example).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .fleets import (
    LENGTH,
    LOW_TRAFFIC_HIPSTER,
    NAB,
    W1,
    W2,
    nab_fleet,
    nezha_fleet,
    synth_fleet,
)
from .scenario import build_instance

OUT = Path(__file__).resolve().parent / "scenarios"

METRICS = {
    "requests": {"kind": "counter"},
    "errors": {"kind": "counter"},
    "latency_p95": {"kind": "gauge", "direction": "increase", "group": "latency"},
    "cpu": {"kind": "gauge", "direction": "increase", "group": "saturation"},
    "memory": {"kind": "gauge", "direction": "increase", "leak": True, "group": "saturation"},
}
SLO = {"errors": "errors", "total": "requests", "objective": 0.99, "threshold": 0.05}

SETS: dict[str, dict[str, Any]] = {
    "dev": {
        "seeds": 1,
        "hipster": [("2022-08-22", o) for o in (250, 420, 590, 760, 930)],
        "tt": [],
        "tweets": ["AAPL", "AMZN", "CRM", "UPS"],
        "cpu": [
            "ec2_cpu_utilization_24ae8d",
            "ec2_cpu_utilization_53ea38",
            "ec2_cpu_utilization_5f5533",
            "ec2_cpu_utilization_77c1ca",
        ],
        "travel": "TravelTime_387",
        "taxi_offsets": (300, 2000),
        "shapes": [
            ("realKnownCause/cpu_utilization_asg_misconfiguration.csv", 17002),
            ("realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv", 3080),
        ],
        "release_shape": ("realTraffic/TravelTime_387.csv", 428),
    },
    "heldout": {
        "seeds": 101,
        "hipster": [("2022-08-23", o) for o in (290, 450)],
        "tt": [("2023-01-29", o) for o in (430, 600, 760)]
        + [("2023-01-30", o) for o in (160, 340, 520)],
        "tweets": ["FB", "GOOG", "IBM", "KO"],
        "cpu": [
            "ec2_cpu_utilization_825cc2",
            "ec2_cpu_utilization_ac20cd",
            "ec2_cpu_utilization_c6585a",
            "ec2_cpu_utilization_fe7f93",
        ],
        "travel": "TravelTime_451",
        "taxi_offsets": (5000, 7600),
        "shapes": [
            ("realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv", 3575),
            ("realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv", 2585),
        ],
        "release_shape": ("realTraffic/TravelTime_451.csv", 546),
    },
}
# ----------------------------------------------------------------------------- scenarios


def scenario(
    name: str,
    split: str,
    seed: int,
    fleet: list[dict[str, Any]],
    expect: dict[str, Any],
    description: str,
    tags: list[str],
    incidents: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    for inst in fleet:
        inst.pop("pod", None)
    doc: dict[str, Any] = {
        "name": name,
        "description": description,
        "split": split,
        "tags": tags,
        "seed": seed,
        "step": 60,
        "length": LENGTH,
        "analysis_interval": 5,
        "bake": 6,
        "baseline": 60,
        "metrics": json.loads(json.dumps(METRICS)),
        "slo": dict(SLO),
    }
    if incidents:
        doc["incidents"] = incidents
    doc["instances"] = fleet
    doc["expect"] = expect
    _thresholds(doc)
    return doc


def _thresholds(doc: dict[str, Any]) -> None:
    """Fixed fleet-wide thresholds for the Argo baseline from the pooled pre-rollout p95."""
    built = [build_instance(i, doc, k, []) for k, i in enumerate(doc["instances"])]
    for name, m in doc["metrics"].items():
        if m["kind"] != "gauge":
            continue
        vals = np.concatenate([b.series[name].values[:W1] for b in built if name in b.series])
        vals = vals[np.isfinite(vals)]
        if vals.size:
            m["threshold"] = float(f"{1.5 * float(np.percentile(vals, 95)):.4g}")


def _fault(metric: str, kind: str, start: int, **kw: Any) -> dict[str, Any]:
    return {"metric": metric, "kind": kind, "from": start, **kw}


def _updated(fleet: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in fleet if i["updated_at"] is not None]


def _release(fleet: list[dict[str, Any]], *faults: dict[str, Any]) -> None:
    for inst in _updated(fleet):
        inst.setdefault("faults", []).extend({**f, "from": inst["updated_at"]} for f in faults)


def _customer(inst: dict[str, Any], *faults: dict[str, Any]) -> None:
    inst.setdefault("faults", []).extend({**f, "from": inst["updated_at"]} for f in faults)


def _bg(
    split: str, i: int, rng: np.random.Generator, **kw: Any
) -> tuple[list[dict[str, Any]], str]:
    """Background fleet number ``i``: alternate synthetic and Nezha (hipster, then TrainTicket)."""
    cfg = SETS[split]
    real = cfg["hipster"] + cfg["tt"]
    if i % 2 == 1 and real:
        day, off = real[(i // 2) % len(real)]
        system = "hipster" if day.startswith("2022") else "tt"
        return nezha_fleet(
            rng, day, off, system, kw.get("pairs", ())
        ), f"nezha-{system}-{day}@{off}"
    return synth_fleet(rng, **kw), "synthetic"


def build(split: str) -> list[dict[str, Any]]:
    cfg = SETS[split]
    docs: list[dict[str, Any]] = []
    seed = cfg["seeds"]

    def nxt() -> tuple[int, np.random.Generator]:
        nonlocal seed
        seed += 1
        return seed, np.random.default_rng(seed)

    healthy = {"verdict": "healthy", "blame": "none", "onset": W1}
    # 1-2. healthy releases on noisy metrics, synthetic and real pods
    for i in range(6):
        s, rng = nxt()
        fleet, src = _bg(split, i, rng, noise=1.6 if i % 2 == 0 else 1.0)
        docs.append(
            scenario(
                f"healthy-noisy-{i + 1:02d}",
                split,
                s,
                fleet,
                healthy,
                "a good release on noisy metrics",
                ["healthy", src],
            )
        )
    # 3. hard healthy: bursty traffic, compressed diurnal, real noise, chronic customer, benign cost
    for i, kind in enumerate(["bursty", "bursty", "diurnal", "diurnal", "noise"]):
        s, rng = nxt()
        fleet = nab_fleet(rng, cfg, kind, variant=i)
        docs.append(
            scenario(
                f"healthy-hard-{kind}-{i + 1:02d}",
                split,
                s,
                fleet,
                healthy,
                f"a good release on {kind} real NAB series",
                ["healthy", "hard", f"nab-{kind}"],
            )
        )
    s, rng = nxt()
    fleet, src = _bg(split, 1, rng)
    bad = fleet[4]
    bad["series"]["errors"] = {"synth": {"ratio_of": "requests", "p": 0.07}}
    docs.append(
        scenario(
            "healthy-hard-chronic-customer",
            split,
            s,
            fleet,
            healthy,
            f"{bad['id']} fails its SLO (7 % errors) before and after the update: "
            "pre-existing, not the release",
            ["healthy", "hard", src],
        )
    )
    s, rng = nxt()
    fleet, src = _bg(split, 0, rng)
    _release(
        fleet,
        _fault("cpu", "multiply", 0, factor=1.1),
        _fault("latency_p95", "multiply", 0, factor=0.85),
    )
    docs.append(
        scenario(
            "healthy-hard-benign-cost",
            split,
            s,
            fleet,
            healthy,
            "the release costs 10 % more CPU and is 15 % faster: within every floor",
            ["healthy", "hard", src],
        )
    )

    release = {"verdict": "regression", "blame": "release", "onset": W1}
    # 4. global regressions
    for i, (metric, kind, kw) in enumerate(
        [
            ("errors", "error_ratio", {"p": 0.04, "of": "requests"}),
            ("errors", "error_ratio", {"p": 0.03, "of": "requests"}),
            ("latency_p95", "multiply", {"factor": 1.8}),
        ]
    ):
        s, rng = nxt()
        fleet, src = _bg(split, i, rng)
        _release(fleet, _fault(metric, kind, 0, **kw))
        docs.append(
            scenario(
                f"release-regression-{i + 1:02d}",
                split,
                s,
                fleet,
                release,
                f"the release regresses {metric} ({kind} {kw}) everywhere",
                ["regression", "release", src],
            )
        )
    s, rng = nxt()
    fleet, src = _bg(split, 0, rng)
    rel, at = cfg["release_shape"]
    _release(
        fleet,
        _fault("latency_p95", "shape", 0, file=f"{NAB}/{rel}", column="value", at=at, power=0.7),
    )
    docs.append(
        scenario(
            "release-regression-real-shape",
            split,
            s,
            fleet,
            release,
            f"latency follows the labeled real shift of {rel} from each update",
            ["regression", "release", "nab-shape", src],
        )
    )
    # 5. customer-specific regressions
    cust = {"verdict": "regression", "blame": "customer", "onset": W2}
    for i, (who, metric, kind, kw) in enumerate(
        [
            (4, "errors", "error_ratio", {"p": 0.05, "of": "requests"}),
            (3, "latency_p95", "multiply", {"factor": 1.7}),
            (1, "errors", "error_ratio", {"p": 0.08, "of": "requests"}),
        ]
    ):
        s, rng = nxt()
        fleet, src = _bg(split, i, rng)
        _customer(fleet[who], _fault(metric, kind, 0, **kw))
        docs.append(
            scenario(
                f"customer-regression-{i + 1:02d}",
                split,
                s,
                fleet,
                {**cust, "instances": [fleet[who]["id"]], "onset": fleet[who]["updated_at"]},
                f"the release breaks only {fleet[who]['id']}'s customization ({metric})",
                ["regression", "customer", src],
            )
        )
    s, rng = nxt()
    fleet = synth_fleet(rng, pairs=(5,))
    for who in (4, 5):
        _customer(fleet[who], _fault("errors", "error_ratio", 0, p=0.06, of="requests"))
    docs.append(
        scenario(
            "customer-regression-two-instances",
            split,
            s,
            fleet,
            {**cust, "instances": [fleet[4]["id"], fleet[5]["id"]]},
            f"customer {fleet[4]['customer']}'s prod and staging both break",
            ["regression", "customer", "synthetic"],
        )
    )
    # 6. slow leaks
    for i in range(2):
        s, rng = nxt()
        fleet, src = _bg(split, i, rng)
        _release(fleet, _fault("memory", "ramp", 0, per_sample=0.006))
        docs.append(
            scenario(
                f"leak-release-{i + 1:02d}",
                split,
                s,
                fleet,
                release,
                "the release leaks memory: +0.6 %/min (36 %/h) from each update",
                ["regression", "release", "leak", src],
            )
        )
    s, rng = nxt()
    fleet, src = _bg(split, 0, rng)
    _customer(fleet[3], _fault("memory", "ramp", 0, per_sample=0.008))
    docs.append(
        scenario(
            "leak-customer",
            split,
            s,
            fleet,
            {**cust, "instances": [fleet[3]["id"]]},
            f"only {fleet[3]['id']} leaks memory (+0.8 %/min)",
            ["regression", "customer", "leak", src],
        )
    )
    # 7. latency-only regressions
    for i, factor in enumerate([1.45, 1.6, 1.5]):
        s, rng = nxt()
        if i == 2:
            fleet, src = nab_fleet(rng, cfg, "noise"), "nab-noise"
        else:
            fleet, src = _bg(split, i, rng)
        _release(fleet, _fault("latency_p95", "multiply", 0, factor=factor))
        docs.append(
            scenario(
                f"latency-only-{i + 1:02d}",
                split,
                s,
                fleet,
                release,
                f"p95 latency x{factor} on every updated instance, nothing else",
                ["regression", "release", "latency", src],
            )
        )
    # 8. missing data
    s, rng = nxt()
    fleet, src = _bg(split, 0, rng)
    docs.append(
        scenario(
            "missing-sparse-healthy",
            split,
            s,
            fleet,
            healthy,
            "a good release; 25 % of samples missing at random everywhere",
            ["healthy", "missing", src],
            incidents=[{"metric": "all", "kind": "sparse", "p": 0.25, "from": 0}],
        )
    )
    s, rng = nxt()
    fleet, src = _bg(split, 1, rng)
    _release(fleet, _fault("latency_p95", "gap", 0))
    docs.append(
        scenario(
            "missing-metric-after-update",
            split,
            s,
            fleet,
            {"verdict": "no-data", "blame": "unknown", "onset": W1},
            "the new version stops exporting p95 latency: no data, no decision",
            ["no-data", "missing", src],
        )
    )
    s, rng = nxt()
    fleet, src = _bg(split, 2, rng)
    _release(fleet, _fault("errors", "error_ratio", 0, p=0.05, of="requests"))
    docs.append(
        scenario(
            "missing-gaps-with-regression",
            split,
            s,
            fleet,
            release,
            "a bad release (5 % errors) seen through 30 % missing samples",
            ["regression", "release", "missing", src],
            incidents=[{"metric": "all", "kind": "sparse", "p": 0.3, "from": 0}],
        )
    )
    # 9. metrics-source outages
    for i in range(2):
        s, rng = nxt()
        fleet, src = _bg(split, i, rng)
        docs.append(
            scenario(
                f"outage-to-end-{i + 1:02d}",
                split,
                s,
                fleet,
                {"verdict": "no-data", "blame": "unknown", "onset": 95},
                "the metrics source goes down at minute 95 and stays down",
                ["no-data", "outage", src],
                incidents=[{"metric": "all", "kind": "outage", "from": 95}],
            )
        )
    s, rng = nxt()
    fleet, src = _bg(split, 2, rng)
    docs.append(
        scenario(
            "outage-transient-healthy",
            split,
            s,
            fleet,
            healthy,
            "a good release; the metrics source is down for 12 minutes",
            ["healthy", "outage", src],
            incidents=[{"metric": "all", "kind": "outage", "from": 96, "to": 108}],
        )
    )
    # 10. infrastructure incidents during the rollout
    infra = {"verdict": "incident", "blame": "infrastructure", "onset": 100}
    for i, (f_rel, at) in enumerate(cfg["shapes"]):
        s, rng = nxt()
        fleet, src = _bg(split, i, rng)
        docs.append(
            scenario(
                f"infra-real-shape-{i + 1:02d}",
                split,
                s,
                fleet,
                infra,
                f"latency follows the labeled real incident of {f_rel} on every instance "
                "from minute 100",
                ["incident", "infrastructure", "nab-shape", src],
                incidents=[
                    _fault(
                        "latency_p95", "shape", 100, file=f"{NAB}/{f_rel}", column="value", at=at
                    )
                ],
            )
        )
    s, rng = nxt()
    fleet, src = _bg(split, 2, rng)
    docs.append(
        scenario(
            "infra-shared-database-errors",
            split,
            s,
            fleet,
            infra,
            "a shared database fails: 6 % errors on every instance from minute 100",
            ["incident", "infrastructure", src],
            incidents=[_fault("errors", "error_ratio", 100, p=0.06, of="requests")],
        )
    )
    s, rng = nxt()
    fleet, src = _bg(split, 3, rng)
    region = [inst["id"] for k, inst in enumerate(fleet) if k % 2 == 0]
    docs.append(
        scenario(
            "infra-region-latency",
            split,
            s,
            fleet,
            infra,
            "one region's network degrades: x2 latency on half the fleet from minute 100",
            ["incident", "infrastructure", src],
            incidents=[{**_fault("latency_p95", "multiply", 100, factor=2.0), "instances": region}],
        )
    )
    # 11. small regressions on low-traffic instances
    s, rng = nxt()
    fleet = synth_fleet(rng, low_traffic=(4, 7))
    _customer(fleet[4], _fault("errors", "error_ratio", 0, p=0.04, of="requests"))
    docs.append(
        scenario(
            "low-traffic-errors",
            split,
            s,
            fleet,
            {**cust, "instances": [fleet[4]["id"]]},
            f"{fleet[4]['id']} serves ~15 req/min; the release adds 4 % errors there",
            ["regression", "customer", "low-traffic", "synthetic"],
        )
    )
    s, rng = nxt()
    fleet = synth_fleet(rng, low_traffic=(3, 4, 5))
    _customer(fleet[3], _fault("latency_p95", "multiply", 0, factor=1.5))
    docs.append(
        scenario(
            "low-traffic-latency",
            split,
            s,
            fleet,
            {**cust, "instances": [fleet[3]["id"]]},
            f"{fleet[3]['id']} serves ~15 req/min with noisy latency; x1.5 latency",
            ["regression", "customer", "low-traffic", "synthetic"],
        )
    )
    s, rng = nxt()
    real = cfg["hipster"] + cfg["tt"]
    day, off = real[-1]
    system = "hipster" if day.startswith("2022") else "tt"
    fleet = nezha_fleet(rng, day, off, system)
    low = next(
        k
        for k, inst in enumerate(fleet)
        if inst.get("pod") in LOW_TRAFFIC_HIPSTER | {"ts-travel-service"}
        and inst["updated_at"] in (W1, W2)
    )
    _customer(fleet[low], _fault("errors", "error_ratio", 0, p=0.05, of="requests"))
    docs.append(
        scenario(
            "low-traffic-real-pod",
            split,
            s,
            fleet,
            {**cust, "instances": [fleet[low]["id"]], "onset": fleet[low]["updated_at"]},
            f"{fleet[low]['id']} is a low-traffic real pod; the release adds 5 % errors",
            ["regression", "customer", "low-traffic", f"nezha-{system}-{day}@{off}"],
        )
    )
    return docs


class _Dumper(yaml.SafeDumper):
    pass


def _flow_map(d: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    flow = all(not isinstance(v, dict | list) for v in data.values()) and len(data) <= 8
    return d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


_Dumper.add_representer(dict, _flow_map)


def main() -> None:
    for split in SETS:
        folder = OUT / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.yaml"):
            old.unlink()
        docs = build(split)
        for doc in docs:
            text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
            (folder / f"{doc['name']}.yaml").write_text(
                "# generated by `python -m bench.verify.generate`; see bench/verify/README.md\n"
                + text
            )
        print(f"{split}: {len(docs)} scenarios in {folder}")


if __name__ == "__main__":
    main()
