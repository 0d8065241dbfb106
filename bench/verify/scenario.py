"""Scenario files: load one YAML file, build every instance's series. See README.md for the format.

Paths to data files are relative to the repository root (``../shared/data/...``), so the
same scenario runs from any working directory. Building is deterministic: every random draw
comes from a generator seeded by the scenario's ``seed``, the instance and the metric.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rollwave.analysis import Series

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_PREFIX = "../shared/data"


def shared_data_dir() -> Path:
    """Where ``../shared/data`` is for this checkout.

    Next to the repository normally; ``ROLLWAVE_SHARED_DATA`` overrides it; and a clean clone
    made elsewhere (as ``.ci/run`` is meant to be tried: ``git clone . /tmp/x``) finds it next
    to the repository it was cloned from, when that is a local path.
    """
    override = os.environ.get("ROLLWAVE_SHARED_DATA")
    if override:
        return Path(override)
    here = (REPO_ROOT / SHARED_PREFIX).resolve()
    if here.is_dir():
        return here
    try:
        origin = subprocess.run(["git", "-C", str(REPO_ROOT), "config", "--get",
                                 "remote.origin.url"], capture_output=True, text=True,
                                timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        origin = ""
    origin = origin.removeprefix("file://")
    if origin.startswith("/"):
        cloned_from = (Path(origin) / SHARED_PREFIX).resolve()
        if cloned_from.is_dir():
            return cloned_from
    return here

VERDICTS = {"healthy", "regression", "incident", "no-data"}
BLAMES = {"none", "release", "customer", "infrastructure", "unknown"}
PAIRS = {
    ("healthy", "none"),
    ("regression", "release"),
    ("regression", "customer"),
    ("incident", "infrastructure"),
    ("no-data", "unknown"),
}
# What the decision at the end of a scenario must be for each expected blame.
EXPECTED_DECISION = {
    "none": "promote",
    "release": "rollback-release",
    "customer": "rollback-instances",
    "infrastructure": "pause",
    "unknown": "hold",
}


class ScenarioError(Exception):
    """A scenario file that does not follow the format (the message says where)."""


@dataclass(frozen=True)
class MetricDef:
    """What a series is: a counter or a gauge, which way is bad, the fleet's fixed threshold."""

    name: str
    kind: str  # "counter" or "gauge"
    direction: str = "increase"
    threshold: float | None = None  # a fixed, fleet-wide limit (what an Argo user writes)
    leak: bool = False  # a resource that can leak (memory): judged for trends too
    group: str | None = None


@dataclass(frozen=True)
class SLO:
    errors: str
    total: str
    objective: float
    threshold: float  # the fixed error-ratio limit of the threshold baseline


@dataclass(frozen=True)
class Instance:
    id: str
    customer: str
    updated_at: int | None  # sample index
    cohort: str | None
    series: dict[str, Series]


@dataclass(frozen=True)
class Expect:
    verdict: str
    blame: str
    instances: tuple[str, ...]
    onset: int  # sample index

    @property
    def decision(self) -> str:
        return EXPECTED_DECISION[self.blame]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str
    split: str
    step: float
    length: int
    interval: int  # samples per analysis interval
    bake: int  # analysis intervals
    baseline: int  # samples before an update the judges compare with
    metrics: dict[str, MetricDef]
    slo: SLO | None
    instances: tuple[Instance, ...]
    expect: Expect
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def interval_seconds(self) -> float:
        return self.interval * self.step

    def time(self, index: float) -> float:
        return index * self.step


# ----------------------------------------------------------------------------- data files


@functools.lru_cache(maxsize=64)
def _read_csv(path: str) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cols: list[list[float]] = [[] for _ in header]
        for row in reader:
            for i in range(len(header)):
                cell = row[i] if i < len(row) else ""
                try:
                    cols[i].append(float(cell))
                except ValueError:
                    cols[i].append(math.nan)
    return {h: np.array(c, dtype=np.float64) for h, c in zip(header, cols, strict=True)}


def resolve(path: str, where: str) -> Path:
    p = Path(path)
    if path.startswith(SHARED_PREFIX + "/"):
        full = shared_data_dir() / path.removeprefix(SHARED_PREFIX + "/")
    else:
        full = p if p.is_absolute() else (REPO_ROOT / p).resolve()
    if not full.is_file():
        raise ScenarioError(
            f"{where}: data file {path} not found (paths are relative to the "
            f"repository root {REPO_ROOT})"
        )
    return full


def column(spec: dict[str, Any], where: str) -> np.ndarray:
    """The column ``spec['column']`` of ``spec['file']`` as a float array."""
    data = _read_csv(str(resolve(str(spec["file"]), where)))
    col = str(spec.get("column", "value"))
    if col not in data:
        raise ScenarioError(f"{where}: no column {col!r} in {spec['file']} (has {list(data)})")
    return data[col]


def _from_file(
    spec: dict[str, Any], length: int, where: str, rng: np.random.Generator
) -> np.ndarray:
    data = column(spec, where)
    offset = int(spec.get("offset", 0))
    seg = data[offset : offset + length].copy()
    if seg.size < length:
        raise ScenarioError(
            f"{where}: {spec['file']} has only {seg.size} rows from offset {offset}"
        )
    if spec.get("zero_as_missing"):
        seg[seg == 0] = math.nan
    seg = seg * float(spec.get("scale", 1.0))
    if "normalize" in spec:
        ref = seg[: int(spec.get("normalize_over", 60))]
        med = float(np.nanmedian(ref))
        if not med > 0:
            med = float(np.nanmean(ref))
        if med > 0:
            seg = seg * float(spec["normalize"]) / med
    if "floor" in spec:
        seg = np.maximum(seg, float(spec["floor"]))
    if spec.get("poisson"):
        seg = rng.poisson(np.maximum(np.nan_to_num(seg, nan=0.0), 0)).astype(np.float64)
    if spec.get("round"):
        seg = np.round(seg)
    return seg


# ----------------------------------------------------------------------------- generation


def _rng(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def _diurnal(spec: dict[str, Any], length: int) -> np.ndarray:
    amp = float(spec.get("diurnal", 0.0))
    if amp == 0:
        return np.ones(length)
    period = float(spec.get("period", 1440))
    phase = float(spec.get("phase", 0.0))
    t = np.arange(length)
    return 1.0 + amp * np.sin(2 * math.pi * (t / period + phase))


def _bursts(spec: dict[str, Any], length: int, rng: np.random.Generator) -> np.ndarray:
    b = spec.get("bursts")
    out = np.ones(length)
    if not b:
        return out
    p, factor, dur = float(b.get("p", 0.02)), float(b.get("factor", 2.0)), int(b.get("length", 3))
    for i in np.flatnonzero(rng.random(length) < p):
        out[i : i + dur] *= factor
    return out


def _ar_noise(sigma: float, ar: float, length: int, rng: np.random.Generator) -> np.ndarray:
    eps = rng.normal(0.0, sigma * math.sqrt(max(1 - ar * ar, 1e-9)), length)
    out = np.empty(length)
    prev = rng.normal(0.0, sigma)
    for i in range(length):
        prev = ar * prev + eps[i]
        out[i] = prev
    return out


def _synth(
    spec: dict[str, Any],
    length: int,
    rng: np.random.Generator,
    built: dict[str, np.ndarray],
    where: str,
) -> np.ndarray:
    if "ratio_of" in spec:
        base = built.get(str(spec["ratio_of"]))
        if base is None:
            raise ScenarioError(f"{where}: ratio_of {spec['ratio_of']!r} must be defined first")
        n = np.nan_to_num(base, nan=0.0).astype(np.int64)
        return rng.binomial(np.maximum(n, 0), float(spec.get("p", 0.001))).astype(np.float64)
    level = float(spec.get("level", 1.0)) * _diurnal(spec, length) * _bursts(spec, length, rng)
    if "load_of" in spec:
        load = built.get(str(spec["load_of"]))
        if load is None:
            raise ScenarioError(f"{where}: load_of {spec['load_of']!r} must be defined first")
        rel = load / max(float(np.nanmedian(load)), 1e-9)
        level = level * np.power(np.maximum(rel, 0.05), float(spec.get("elasticity", 0.3)))
    noise = str(spec.get("noise", "lognormal"))
    if noise == "poisson":
        return rng.poisson(np.maximum(level, 0)).astype(np.float64)
    sigma = float(spec.get("sigma", 0.1))
    ar = float(spec.get("ar", 0.0))
    if noise == "normal":
        return level * (1.0 + _ar_noise(sigma, ar, length, rng))
    return level * np.exp(_ar_noise(sigma, ar, length, rng))


def _window(f: dict[str, Any], length: int) -> tuple[int, int]:
    start = int(f.get("from", 0))
    end = f.get("to")
    return max(start, 0), length if end is None else min(int(end), length)


def _shape(f: dict[str, Any], length: int, where: str) -> np.ndarray:
    data = column(f, where)
    at, ref = int(f["at"]), int(f.get("ref", 60))
    base = float(np.nanmedian(data[max(at - ref, 0) : at]))
    start, end = _window(f, length)
    out = np.ones(length)
    n = end - start
    seg = data[at : at + n] / base if base else np.ones(n)
    seg = np.power(np.nan_to_num(seg, nan=1.0), float(f.get("power", 1.0)))
    out[start : start + seg.size] = seg
    return out


def _apply_value_fault(values: np.ndarray, f: dict[str, Any], where: str) -> np.ndarray:
    kind = f.get("kind")
    start, end = _window(f, values.size)
    out = values.copy()
    if kind == "multiply":
        out[start:end] *= float(f["factor"])
    elif kind == "add":
        out[start:end] += float(f["amount"])
    elif kind == "ramp":
        steps = np.arange(1, end - start + 1, dtype=np.float64)
        out[start:end] *= 1.0 + float(f["per_sample"]) * steps
    elif kind == "shape":
        out *= _shape(f, values.size, where)
    else:
        raise ScenarioError(f"{where}: unknown fault kind {kind!r}")
    return out


def _faults_for(metric: str, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in faults if f.get("metric") in (metric, "all")]


def _deps(spec: Any) -> list[str]:
    if isinstance(spec, dict) and "synth" in spec:
        return [str(spec["synth"][k]) for k in ("ratio_of", "load_of") if k in spec["synth"]]
    return []


def build_instance(
    raw: dict[str, Any], scenario: dict[str, Any], index: int, incidents: list[dict[str, Any]]
) -> Instance:
    iid = str(raw["id"])
    where = f"{scenario['name']}: instance {iid}"
    length, step, seed = (
        int(scenario["length"]),
        float(scenario.get("step", 60)),
        int(scenario.get("seed", 0)),
    )
    faults = list(raw.get("faults") or [])
    for inc in incidents:
        targets = inc.get("instances", "all")
        if targets == "all" or iid in targets:
            faults.append(inc)
    specs: dict[str, Any] = raw.get("series") or {}
    built: dict[str, np.ndarray] = {}
    pending = list(specs)
    guard = 0
    while pending:
        guard += 1
        if guard > 100:
            raise ScenarioError(f"{where}: circular ratio_of/load_of between {pending}")
        name = pending.pop(0)
        spec = specs[name]
        deps = _deps(spec) + [
            str(f.get("of", "requests"))
            for f in _faults_for(name, faults)
            if f["kind"] == "error_ratio"
        ]
        if any(d and d not in built for d in deps):
            pending.append(name)
            continue
        rng = _rng(seed, iid, name)
        if isinstance(spec, list):
            vals = np.array([math.nan if v is None else float(v) for v in spec], dtype=np.float64)
            if vals.size < length:
                vals = np.concatenate([vals, np.full(length - vals.size, math.nan)])
            vals = vals[:length]
        elif isinstance(spec, dict) and "file" in spec:
            vals = _from_file(spec, length, f"{where}, {name}", rng)
        elif isinstance(spec, dict) and "synth" in spec:
            vals = _synth(spec["synth"], length, rng, built, f"{where}, {name}")
        else:
            raise ScenarioError(f"{where}: series {name} must be a list, a file or a synth spec")
        for f in _faults_for(name, faults):
            if f["kind"] in ("multiply", "add", "ramp", "shape"):
                vals = _apply_value_fault(vals, f, where)
            elif f["kind"] == "error_ratio":
                start, end = _window(f, length)
                total = built.get(str(f.get("of", "requests")))
                if total is None:
                    raise ScenarioError(f"{where}: error_ratio fault needs series {f.get('of')}")
                n = np.nan_to_num(total[start:end], nan=0).astype(np.int64)
                extra = _rng(seed, iid, name, "fault").binomial(np.maximum(n, 0), float(f["p"]))
                vals[start:end] = np.minimum(vals[start:end] + extra, total[start:end])
        built[name] = vals
    series: dict[str, Series] = {}
    for name, vals in built.items():
        errs = np.zeros(length, dtype=bool)
        vals = vals.copy()
        for f in _faults_for(name, faults):
            start, end = _window(f, length)
            if f["kind"] == "gap":
                vals[start:end] = math.nan
            elif f["kind"] == "outage":
                errs[start:end] = True
            elif f["kind"] == "sparse":
                mask = _rng(seed, iid, "sparse").random(length) < float(f.get("p", 0.2))
                mask[:start] = False
                mask[end:] = False
                vals[mask] = math.nan
        vals[errs] = math.nan
        series[name] = Series(start=0.0, step=step, values=vals, errors=errs)
    u = raw.get("updated_at")
    return Instance(
        id=iid,
        customer=str(raw.get("customer", iid.split("/", maxsplit=1)[0])),
        updated_at=None if u is None else int(u),
        cohort=None if raw.get("cohort") is None else str(raw["cohort"]),
        series=series,
    )


def load(path: Path) -> Scenario:
    """Read and build one scenario file; raise ScenarioError saying what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping")
    raw.setdefault("name", path.stem)
    for key in ("length", "instances", "expect", "metrics"):
        if key not in raw:
            raise ScenarioError(f"{path}: missing key {key!r}")
    exp = raw["expect"]
    verdict, blame = str(exp.get("verdict")), str(exp.get("blame"))
    if (verdict, blame) not in PAIRS:
        raise ScenarioError(f"{path}: expect verdict/blame {verdict}/{blame} is not one of {PAIRS}")
    metrics = {
        name: MetricDef(
            name=name,
            kind=str(m.get("kind", "gauge")),
            direction=str(m.get("direction", "increase")),
            threshold=None if m.get("threshold") is None else float(m["threshold"]),
            leak=bool(m.get("leak", False)),
            group=m.get("group"),
        )
        for name, m in (raw["metrics"] or {}).items()
    }
    slo_raw = raw.get("slo")
    slo = None
    if slo_raw:
        slo = SLO(
            errors=str(slo_raw.get("errors", "errors")),
            total=str(slo_raw.get("total", "requests")),
            objective=float(slo_raw.get("objective", 0.99)),
            threshold=float(slo_raw.get("threshold", 0.05)),
        )
    incidents = list(raw.get("incidents") or [])
    instances = tuple(
        build_instance(inst, raw, i, incidents) for i, inst in enumerate(raw["instances"])
    )
    ids = [i.id for i in instances]
    if len(set(ids)) != len(ids):
        raise ScenarioError(f"{path}: duplicate instance ids")
    want = tuple(str(x) for x in exp.get("instances") or ())
    unknown = [w for w in want if w not in ids]
    if unknown:
        raise ScenarioError(f"{path}: expect.instances names unknown instances {unknown}")
    if blame == "customer" and not want:
        raise ScenarioError(f"{path}: a customer blame must list the instances to roll back")
    updates = [i.updated_at for i in instances if i.updated_at is not None]
    if not updates:
        raise ScenarioError(f"{path}: no instance is updated")
    return Scenario(
        name=str(raw["name"]),
        path=path,
        description=str(raw.get("description", "")),
        split=str(raw.get("split", path.parent.name)),
        step=float(raw.get("step", 60)),
        length=int(raw["length"]),
        interval=int(raw.get("analysis_interval", 5)),
        bake=int(raw.get("bake", 6)),
        baseline=int(raw.get("baseline", 60)),
        metrics=metrics,
        slo=slo,
        instances=instances,
        expect=Expect(verdict, blame, want, int(exp.get("onset", min(updates)))),
        tags=tuple(str(t) for t in raw.get("tags") or ()),
    )


def load_folder(folder: Path) -> list[Scenario]:
    """Every ``*.yaml`` / ``*.yml`` under ``folder`` (recursively), sorted by path."""
    files = sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")])
    if folder.is_file():
        files = [folder]
    return [load(f) for f in files]
