"""Fleet matrix time-to-ready at 10,000 customers × 5 services: server and browser.

    .venv/bin/python -m bench.dashboard.bench [--customers 10000] [--runs 15] [--json PATH]

Seeds a workspace (10,000 customer files) and its database (50,000 ``instance_state`` rows),
then measures:

- service: ``fleet_views.matrix`` in-process (cold index build, then warm queries);
- server: full HTTP responses of ``/fleet`` and ``/api/v1/fleet`` from uvicorn on loopback
  (logged-in session), for the default page and each kind of filter;
- browser: Debian's Chromium through Playwright, navigation start to DOMContentLoaded (the
  matrix is in the server-rendered HTML, so the table is complete and htmx initialised by
  then), and a search typed into the box until the one matching row is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, serve
from tests.web.seed import seed_large_fleet
from tests.web.support import PASSWORD, add_users

from rollwave.services import fleet_views
from rollwave.services.context import App

QUERIES = {
    "default page": "",
    "search one customer": "q=cust04217",
    "tier + region": "tier=enterprise&region=eu-west",
    "tag expression": "match=tier+%3D%3D+standard+and+not+early-adopter",
    "needs attention": "health=attention",
    "drifted": "drift=1",
    "page 50": "page=50",
}


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
            "max_ms": round(ordered[-1] * 1000, 1)}


def service_times(root: Path, runs: int) -> dict[str, Any]:
    app = App(root=root)
    started = time.perf_counter()
    fleet_views.fleet_index(app)
    cold = time.perf_counter() - started
    out: dict[str, Any] = {"index_cold_s": round(cold, 3)}
    for name, query in QUERIES.items():
        params = dict(p.split("=", 1) for p in query.split("&") if p)
        q = fleet_views.MatrixQuery(
            q=params.get("q", ""), tier=params.get("tier", ""),
            region=params.get("region", ""),
            match=params.get("match", "").replace("+", " ").replace("%3D", "="),
            health=params.get("health", ""), drift=params.get("drift") == "1",
            page=int(params.get("page", 1)))
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            fleet_views.matrix(app, q)
            samples.append(time.perf_counter() - t)
        out[name] = _stats(samples)
    app.close()
    return out


def http_times(base: str, runs: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=60) as client:
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"username": "vera", "password": PASSWORD,
                                    "csrf_token": token})
        client.get("/fleet")  # warm
        out: dict[str, Any] = {}
        for name, query in QUERIES.items():
            for kind, path in (("html", "/fleet"), ("json", "/api/v1/fleet")):
                samples = []
                size = 0
                for _ in range(runs):
                    t = time.perf_counter()
                    response = client.get(f"{path}?{query}")
                    samples.append(time.perf_counter() - t)
                    response.raise_for_status()
                    size = len(response.content)
                out[f"{name} ({kind})"] = {**_stats(samples), "bytes": size}
        return out


def browser_times(base: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "vera")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=whoami]")
        page.goto(f"{base}/fleet")
        ready, wall, search = [], [], []
        for _ in range(runs):
            t = time.perf_counter()
            page.goto(f"{base}/fleet", wait_until="domcontentloaded")
            page.wait_for_selector("table.matrix tbody tr")
            wall.append(time.perf_counter() - t)
            nav = page.evaluate("() => performance.getEntriesByType('navigation')[0]"
                                ".domContentLoadedEventEnd")
            ready.append(nav / 1000)
            t = time.perf_counter()
            page.fill("[data-testid=fleet-search]", "cust04217")
            page.wait_for_function("() => document.querySelector('[data-testid=matrix]')"
                                   ".dataset.total === '1'")
            search.append(time.perf_counter() - t - 0.25)  # minus the 250 ms typing debounce
        rows = page.locator("table.matrix tbody tr").count()
        browser.close()
    return {"time_to_ready (navigation → DOMContentLoaded)": _stats(ready),
            "wall (goto → first matrix row)": _stats(wall),
            "search → row shown (excl. 250 ms debounce)": _stats(search),
            "rows_after_search": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=Path("bench/out/dashboard.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rw-dash-") as tmp:
        root = Path(tmp) / "fleet"
        started = time.perf_counter()
        seed_large_fleet(root, args.customers)
        app = App.open(root, actor="bench")
        add_users(app)
        app.close()
        seeded = time.perf_counter() - started
        result: dict[str, Any] = {"customers": args.customers, "services": 5,
                                  "seed_s": round(seeded, 1), "cpus": os.cpu_count(),
                                  "loadavg_before": os.getloadavg()}
        result["service"] = service_times(root, args.runs)
        with serve(root) as base:
            result["http"] = http_times(base, args.runs)
            result["browser"] = browser_times(base, args.runs)
        result["loadavg_after"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
