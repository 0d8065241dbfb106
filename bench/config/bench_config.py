"""Benchmark: render + validate 10,000 instances × 5 services; group a release's config diff.

Usage::

    .venv/bin/python bench/config/bench_config.py [--customers 5000] [--repeat 3] [--profile]

It writes a generated workspace (customers × 2 instances, 5 services, 3 environments, 8
overlays per service, JSON Schemas, templates, secret references, list merge modes, customer
and instance layers) into a temporary directory, loads it with the normal workspace loader
(not timed), then times, with cold config caches each repeat:

1. ``render_report(workspace)``: read and compile config/ (layer files, schemas), match
   overlays, merge, render templates, hash every config, validate every config against its
   schema — every (instance, service) pair;
2. for a release that changes the api and worker defaults and one overlay: ``release_diff``
   over every (instance, service) of the old and the new render plus ``group_diffs`` and the
   text summary (both renders are done beforehand and not timed here).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from rollwave.config import group_diffs, release_diff, render_report
from rollwave.workspace.loader import Workspace, load_workspace

SERVICES = ("api", "web", "worker", "scheduler", "search")
TIERS = ("standard", "standard", "standard", "premium", "enterprise")
REGIONS = ("eu-west", "eu-central", "us-east", "ap-south")
TAGS = ("early-adopter", "beta", "gdpr", "hipaa")


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _defaults(service: str, release: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "server": {"port": "{{ port | default(8080) }}", "workers": 4, "keepalive": 30,
                   "public_url": "https://{{ customer }}.{{ region | default('global') }}"
                                 ".example.com"},
        "db": {"host": "db-{{ region | default('local') }}.internal", "port": 5432,
               "name": "app", "pool_size": 10, "timeout_ms": 5000,
               "password": {"$secret": "env:DB_PASSWORD"}},
        "cache": {"enabled": True, "ttl_s": 300, "size_mb": 256},
        "logging": {"level": "debug" if release and service in ("api", "worker") else "info",
                    "format": "json", "sample_rate": 0.1},
        "features": {"search_v2": False, "new_billing": False, "exports": True},
        "limits": {"requests_per_min": 600, "upload_mb": 50, "max_users": 100},
        "allowed_origins": ["https://app.example.com"],
        "plugins": [{"name": "core", "enabled": True}, {"name": "metrics", "enabled": True}],
        "service_name": service,
    }
    if release and service == "api":
        values["features"]["audit_log"] = True
    if service == "api":
        values["db"]["password"] = {"$secret": "aws-sm:prod/{{ customer }}/db#password"}
    return {"merge": {"allowed_origins": "append", "plugins": {"by": "name"}}, "values": values}


def _schema(invalid: bool = False) -> dict[str, Any]:
    def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
        return {"type": "object", "properties": props, "required": required or [],
                "additionalProperties": False}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["server", "db", "logging", *(["region_code"] if invalid else [])],
        "additionalProperties": False,
        "$defs": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
        "properties": {
            "server": obj({"port": {"$ref": "#/$defs/port"},
                           "workers": {"type": "integer", "minimum": 1, "maximum": 64},
                           "keepalive": {"type": "integer"},
                           "public_url": {"type": "string", "pattern": "^https://"}},
                          ["port"]),
            "db": obj({"host": {"type": "string", "minLength": 1},
                       "port": {"$ref": "#/$defs/port"}, "name": {"type": "string"},
                       "pool_size": {"type": "integer", "minimum": 1, "maximum": 200},
                       "timeout_ms": {"type": "integer", "minimum": 100},
                       "password": {"type": "string", "minLength": 8}}, ["host"]),
            "cache": obj({"enabled": {"type": "boolean"}, "ttl_s": {"type": "integer"},
                          "size_mb": {"type": "integer", "maximum": 4096}}),
            "logging": obj({"level": {"enum": ["debug", "info", "warning", "error"]},
                            "format": {"enum": ["json", "text"]},
                            "sample_rate": {"type": "number", "minimum": 0, "maximum": 1}}),
            "features": {"type": "object", "additionalProperties": {"type": "boolean"}},
            "limits": obj({"requests_per_min": {"type": "integer", "minimum": 1},
                           "upload_mb": {"type": "integer"},
                           "max_users": {"type": "integer", "minimum": 1}}),
            "allowed_origins": {"type": "array", "items": {"type": "string",
                                                           "format": "uri"}},
            "plugins": {"type": "array", "items": obj({"name": {"type": "string"},
                                                       "enabled": {"type": "boolean"}},
                                                      ["name"])},
            "service_name": {"type": "string"},
        },
    }


OVERLAYS: dict[str, tuple[str, dict[str, Any]]] = {
    "enterprise": ("tier == enterprise", {"db": {"pool_size": 50},
                                          "limits": {"max_users": 10000},
                                          "plugins": [{"name": "sso", "enabled": True}]}),
    "premium": ("tier == premium", {"db": {"pool_size": 25}, "limits": {"max_users": 1000}}),
    "eu-west": ("region == eu-west", {"cache": {"ttl_s": 600}}),
    "eu-central": ("region == eu-central", {"cache": {"ttl_s": 900}}),
    "early": ("early-adopter", {"features": {"search_v2": True}}),
    "beta": ("beta and not tier == enterprise", {"features": {"new_billing": True}}),
    "gdpr": ("gdpr", {"logging": {"sample_rate": 0.01},
                      "allowed_origins": ["https://eu.example.com"]}),
    "hipaa": ("hipaa", {"db": {"timeout_ms": 2000}, "cache": {"enabled": False}}),
}


def generate(root: Path, customers: int, release: bool = False, invalid: bool = False) -> None:
    """Write the benchmark workspace (``release`` changes a few defaults and one overlay;
    ``invalid`` makes the api schema require a key no layer sets)."""
    rng = random.Random(42)
    _write(root / "rollwave.yaml", {
        "project": "bench",
        "environments": {"prod": {}, "staging": {"production": False}, "dev": {}},
        "services": {name: {} for name in SERVICES},
        "policies": {"standard": {"waves": [{"name": "all", "select": "rest"}]}},
    })
    for service in SERVICES:
        base = root / "config" / service
        _write(base / "defaults.yaml", _defaults(service, release))
        _write(base / "schema.json", _schema(invalid and service == "api"))
        _write(base / "environments" / "staging.yaml",
               {"values": {"logging": {"level": "debug"}, "db": {"pool_size": 5}}})
        _write(base / "environments" / "dev.yaml", {"values": {"cache": {"enabled": False}}})
        for name, (match, values) in OVERLAYS.items():
            if release and name == "premium":
                values = {**values, "limits": {"max_users": 2000}}
            _write(base / "overlays" / f"{name}.yaml", {"match": match, "values": values})
    for index in range(customers):
        cid = f"c{index:05d}"
        data: dict[str, Any] = {
            "id": cid, "tier": rng.choice(TIERS), "region": rng.choice(REGIONS),
            "tags": sorted(rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))),
            "labels": {"plan": rng.choice(("a", "b"))},
            "instances": {
                "prod": {"environment": "prod", "target": {"port": 10000 + 10 * index}},
                "staging": {"environment": "staging"},
            },
        }
        if rng.random() < 0.10:
            data["config"] = {"api": {"db": {"pool_size": rng.choice((20, 40, 80))},
                                      "allowed_origins": [f"https://{cid}.example.org"]}}
        if rng.random() < 0.02:
            data["instances"]["prod"]["config"] = {"worker": {"server": {"workers": 16}}}
        _write(root / "customers" / f"{cid}.yaml", data)


def _fresh(workspace: Workspace) -> Workspace:
    workspace.extras.clear()  # drop cached config sources: every repeat starts cold
    return workspace


def _time(label: str, repeat: int, run: Any) -> float:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(f"{label}: best {min(walls):.3f} s wall, median {statistics.median(walls):.3f} s, "
          f"cpu best {min(cpus):.3f} s ({repeat} runs)")
    return min(walls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5000, help="2 instances each")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one render+validate")
    parser.add_argument("--invalid", action="store_true",
                        help="also time a fleet whose 10,000 api configs are all invalid")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_root, new_root = Path(tmp) / "old", Path(tmp) / "new"
        start = time.perf_counter()
        generate(old_root, args.customers)
        generate(new_root, args.customers, release=True)
        print(f"generated 2 workspaces in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        old_ws = load_workspace(old_root)
        new_ws = load_workspace(new_root)
        print(f"loaded 2 workspaces (not timed below) in {time.perf_counter() - start:.1f} s")
        pairs = sum(len(inst.services) for inst in old_ws.fleet)
        print(f"{len(old_ws.fleet):,} instances, {len(SERVICES)} services, "
              f"{pairs:,} (instance, service) configs")

        report = render_report(_fresh(old_ws))
        assert report.ok, report.problems()[:5]
        assert len(report.configs) == pairs
        distinct = len({c.hash for c in report.configs.values()})
        print(f"{distinct:,} distinct configs; 0 problems")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            render_report(_fresh(old_ws))
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

        render_s = _time("render + validate", args.repeat,
                         lambda: render_report(_fresh(old_ws)))
        old = render_report(_fresh(old_ws)).configs
        new = render_report(_fresh(new_ws)).configs
        summary = group_diffs(release_diff(old, new))
        text = summary.render_text()

        def grouped() -> None:
            group_diffs(release_diff(old, new)).render_text()

        diff_s = _time("release diff + grouping", args.repeat, grouped)

        def preview() -> None:
            fresh = render_report(_fresh(new_ws)).configs
            group_diffs(release_diff(old, fresh)).render_text()

        _time("plan preview: render+validate the release, diff, group", args.repeat, preview)
        if args.invalid:
            bad_root = Path(tmp) / "invalid"
            generate(bad_root, args.customers, invalid=True)
            bad_ws = load_workspace(bad_root)
            bad = render_report(_fresh(bad_ws))
            print(f"invalid fleet: {len(bad.issues):,} issues, {len(bad.problems()):,} "
                  "grouped problems")
            _time("render + validate, every api config invalid", args.repeat,
                  lambda: render_report(_fresh(bad_ws)))
        print(text)
        print(f"\nrender+validate {render_s:.2f} s (target < 5 s), "
              f"grouped diff {diff_s:.2f} s (target < 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
