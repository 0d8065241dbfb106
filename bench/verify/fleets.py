"""Fleets for the scenarios: synthetic demo-fleet-like customers, real pods, real NAB series.

Used by :mod:`bench.verify.generate`; each function returns plain instance mappings in the
scenario file format (see README.md), referencing real data by path, never copying it.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
from typing import Any

import numpy as np

from .scenario import REPO_ROOT

NAB = "../shared/data/nab/data"
NEZHA = "../shared/data/nezha/rca_data"
LENGTH, W1, W2, W3 = 160, 60, 90, 120

NAMES = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "oscorp",
    "vandelay",
]

HIPSTER_PODS = [
    "frontend",
    "cartservice",
    "productcatalogservice",
    "currencyservice",
    "checkoutservice",
    "recommendationservice",
    "adservice",
    "shippingservice",
    "paymentservice",
    "emailservice",
]
TT_PODS = [
    "ts-gateway-service",
    "ts-ui-dashboard",
    "ts-order-service",
    "ts-travel-service",
    "ts-travel2-service",
    "ts-order-other-service",
    "ts-verification-code-service",
    "ts-auth-service",
]
LOW_TRAFFIC_HIPSTER = {"checkoutservice", "paymentservice", "emailservice"}


# ----------------------------------------------------------------------------- data helpers


def _pod_file(day: str, pod: str) -> str:
    """The metric file of ``pod`` (its name without the replica hashes) on ``day``."""
    folder = REPO_ROOT / NEZHA / day / "metric"
    for f in sorted(folder.iterdir()):
        if f.name.endswith("_metric.csv") and f.name.rsplit("-", 2)[0] == pod:
            return f"{NEZHA}/{day}/metric/{f.name}"
    raise FileNotFoundError(f"no pod {pod} on {day}")


@functools.lru_cache(maxsize=32)
def _nab_times(rel: str) -> list[dt.datetime]:
    with open(REPO_ROOT / NAB / rel) as fh:
        rows = list(csv.reader(fh))[1:]
    return [dt.datetime.fromisoformat(r[0]) for r in rows]


@functools.lru_cache(maxsize=1)
def _windows() -> dict[str, list[tuple[dt.datetime, dt.datetime]]]:
    raw = json.loads((REPO_ROOT / "../shared/data/nab/labels/combined_windows.json").read_text())
    return {
        k: [(dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b)) for a, b in v]
        for k, v in raw.items()
    }


@functools.lru_cache(maxsize=32)
def _nab_values(rel: str) -> np.ndarray:
    with open(REPO_ROOT / NAB / rel) as fh:
        rows = list(csv.reader(fh))[1:]
    return np.array([float(r[1]) for r in rows])


def _steady(values: np.ndarray, block: int = 20, ratio: float = 2.5) -> bool:
    """No sustained level shift: every 20-row block median within x2.5 of every other.

    NAB's labels are not exhaustive; a healthy background must not hide an unlabeled shift
    (ec2_cpu_utilization_ac20cd jumps x10 around row 590, unlabeled).
    """
    meds = np.array([np.median(values[i : i + block]) for i in range(0, values.size, block)])
    meds = np.maximum(meds, 1e-9 + 0.01 * float(np.median(np.abs(values))))
    return bool(meds.max() / meds.min() <= ratio)


def nab_offset(
    rel: str, rng: np.random.Generator, length: int = LENGTH, near: int | None = None
) -> int:
    """A segment start that avoids every labeled anomaly window and every unlabeled shift."""
    times = _nab_times(rel)
    values = _nab_values(rel)
    wins = _windows().get(rel, [])
    ok = [
        o
        for o in range(0, len(times) - length, 7)
        if not any(a <= times[o + length - 1] and times[o] <= b for a, b in wins)
        and _steady(values[o : o + length])
    ]
    if near is not None:
        ok = [o for o in ok if abs(o - near) < 600] or ok
    return int(rng.choice(ok))


# ----------------------------------------------------------------------------- fleets


def _layout(n: int = 10, pairs: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Ten instances: waves at 60 (3), 90 (3), 120 (2), two left for later waves.

    ``pairs`` lists instance indexes that are a second instance (staging) of the previous one's
    customer.
    """
    waves = [W1, W1, W1, W2, W2, W2, W3, W3, None, None][:n]
    out = []
    cust_i = 0
    for i in range(n):
        if i in pairs:
            cust = out[-1]["customer"]
            iid = f"{cust}/staging"
        else:
            cust = NAMES[cust_i]
            cust_i += 1
            iid = f"{cust}/prod"
        out.append({"id": iid, "customer": cust, "updated_at": waves[i], "series": {}})
    return out


def synth_fleet(
    rng: np.random.Generator,
    n: int = 10,
    pairs: tuple[int, ...] = (),
    noise: float = 1.0,
    low_traffic: tuple[int, ...] = (),
    bursts: bool = False,
) -> list[dict[str, Any]]:
    """A demo-fleet-like fleet: heterogeneous customers, two regions, diurnal traffic."""
    fleet = _layout(n, pairs)
    for i, inst in enumerate(fleet):
        region = i % 2
        inst["cohort"] = f"region-{region}"
        level = float(np.exp(rng.normal(np.log(200), 0.8)))
        if i in low_traffic:
            level = float(rng.uniform(8, 20))
        req: dict[str, Any] = {
            "level": round(level, 1),
            "noise": "poisson",
            "diurnal": round(float(rng.uniform(0.1, 0.3)), 2),
            "period": 1440,
            "phase": 0.25 * region,
        }
        if bursts:
            req["bursts"] = {
                "p": 0.02,
                "factor": round(float(rng.uniform(1.5, 3.0)), 2),
                "length": 3,
            }
        sigma = float(rng.uniform(0.06, 0.16)) * noise * (2.0 if i in low_traffic else 1.0)
        inst["series"] = {
            "requests": {"synth": req},
            "errors": {
                "synth": {"ratio_of": "requests", "p": round(float(rng.uniform(0.001, 0.006)), 4)}
            },
            "latency_p95": {
                "synth": {
                    "level": round(float(rng.uniform(0.08, 0.6)), 3),
                    "noise": "lognormal",
                    "sigma": round(sigma, 3),
                    "ar": round(float(rng.uniform(0.3, 0.7)), 2),
                    "load_of": "requests",
                    "elasticity": 0.3,
                }
            },
            "cpu": {
                "synth": {
                    "level": round(float(rng.uniform(10, 60)), 1),
                    "noise": "lognormal",
                    "sigma": round(0.08 * noise, 3),
                    "ar": 0.6,
                    "load_of": "requests",
                    "elasticity": 0.8,
                }
            },
            "memory": {
                "synth": {
                    "level": round(float(rng.uniform(200, 900)), 0),
                    "noise": "normal",
                    "sigma": 0.01,
                    "ar": 0.9,
                }
            },
        }
    return fleet


def nezha_fleet(
    rng: np.random.Generator,
    day: str,
    offset: int,
    system: str = "hipster",
    pairs: tuple[int, ...] = (),
) -> list[dict[str, Any]]:
    """Real pods as customers' instances: each pod's own load, latency, CPU and memory."""
    pods = list(HIPSTER_PODS if system == "hipster" else TT_PODS)
    n = len(pods)
    fleet = _layout(min(n, 10), pairs)
    if n < 10:  # TrainTicket: 8 pods; waves of 3, 3, 1, one left
        for inst, u in zip(fleet, [W1, W1, W1, W2, W2, W2, W3, None], strict=False):
            inst["updated_at"] = u
    for inst, pod in zip(fleet, pods, strict=False):
        f = _pod_file(day, pod)
        inst["pod"] = pod
        inst["series"] = {
            "requests": {
                "file": f,
                "column": "PodWorkload(Ops)",
                "offset": offset,
                "scale": 60,
                "round": True,
            },
            "errors": {
                "synth": {"ratio_of": "requests", "p": round(float(rng.uniform(0.001, 0.006)), 4)}
            },
            "latency_p95": {
                "file": f,
                "column": "PodServerLatencyP95(s)",
                "offset": offset,
                "zero_as_missing": True,
            },
            "cpu": {"file": f, "column": "CpuUsageRate(%)", "offset": offset},
            "memory": {"file": f, "column": "MemoryUsage(Mi)", "offset": offset},
        }
    return fleet


def nab_fleet(
    rng: np.random.Generator, cfg: dict[str, Any], kind: str, variant: int = 0
) -> list[dict[str, Any]]:
    """Real NAB series as traffic (bursty tweets, diurnal taxi) or as noise (CPU, travel time)."""
    fleet = synth_fleet(rng)
    for i, inst in enumerate(fleet):
        s = inst["series"]
        if kind == "bursty":
            name = cfg["tweets"][i % len(cfg["tweets"])]
            rel = f"realTweets/Twitter_volume_{name}.csv"
            s["requests"] = {
                "file": f"{NAB}/{rel}",
                "column": "value",
                "offset": nab_offset(rel, rng),
                "normalize": round(float(np.exp(rng.normal(np.log(150), 0.6))), 1),
                "poisson": True,
            }
            s["latency_p95"]["synth"]["elasticity"] = 0.35
        elif kind == "diurnal":
            rel = "realKnownCause/nyc_taxi.csv"
            base = cfg["taxi_offsets"][variant % 2] + (0 if inst["cohort"] == "region-0" else 12)
            s["requests"] = {
                "file": f"{NAB}/{rel}",
                "column": "value",
                "offset": base + int(rng.integers(0, 3)),
                "normalize": round(float(np.exp(rng.normal(np.log(200), 0.6))), 1),
                "poisson": True,
            }
        elif kind == "noise":
            cpu_rel = f"realAWSCloudwatch/{cfg['cpu'][i % len(cfg['cpu'])]}.csv"
            s["cpu"] = {
                "file": f"{NAB}/{cpu_rel}",
                "column": "value",
                "offset": nab_offset(cpu_rel, rng),
                "normalize": round(float(rng.uniform(15, 50)), 1),
                "floor": 0.01,
            }
            tr = f"realTraffic/{cfg['travel']}.csv"
            s["latency_p95"] = {
                "file": f"{NAB}/{tr}",
                "column": "value",
                "offset": nab_offset(tr, rng),
                "normalize": round(float(rng.uniform(0.1, 0.5)), 3),
            }
    return fleet


