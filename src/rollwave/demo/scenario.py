"""The demo fleet: 12 customers, a few customizations, and a release that mishandles one.

Everything is data written into an ordinary workspace, so after ``rollwave demo --keep`` the
same files can be explored and edited with every other command.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollwave.workspace.scaffold import CustomerSeed, customer_document, write_workspace
from rollwave.yamlio import dump_yaml

BROKEN_CUSTOMER = "umbrella"
"""The customer whose customization (``reports.legacy_export: true``) release 1.1 mishandles."""

SCENARIOS = ("customer", "release", "infrastructure")
"""customer: 1.1 breaks one customization; release: 1.1 breaks everyone; infrastructure: an
incident hits every instance, old version or new, during the rollout."""


@dataclass(frozen=True)
class DemoCustomer:
    id: str
    name: str
    tier: str
    region: str
    tags: tuple[str, ...] = ()
    timezone: str = "UTC"
    config: dict[str, Any] | None = None


CUSTOMERS = (
    DemoCustomer("internal", "Our own tenant", "internal", "eu-west", ("internal",)),
    DemoCustomer("acme", "Acme Corp", "enterprise", "eu-west", ("early-adopter",),
                 "Europe/Berlin", {"branding": {"color": "#d62728"}}),
    DemoCustomer("initech", "Initech", "standard", "us-east", ("early-adopter",),
                 "America/New_York"),
    DemoCustomer("globex", "Globex", "enterprise", "us-east", (), "America/Chicago",
                 {"reports": {"max_rows": 250000}}),
    DemoCustomer("hooli", "Hooli", "standard", "us-west", (), "America/Los_Angeles"),
    DemoCustomer(BROKEN_CUSTOMER, "Umbrella Corp", "enterprise", "eu-central", (),
                 "Europe/Paris", {"reports": {"legacy_export": True}}),
    DemoCustomer("stark", "Stark Industries", "enterprise", "us-east", (), "America/New_York",
                 {"branding": {"product_name": "Stark Ops"}}),
    DemoCustomer("wayne", "Wayne Enterprises", "standard", "us-east"),
    DemoCustomer("wonka", "Wonka", "standard", "eu-west", (), "Europe/London"),
    DemoCustomer("tyrell", "Tyrell", "standard", "ap-south", (), "Asia/Kolkata"),
    DemoCustomer("cyberdyne", "Cyberdyne", "standard", "us-west", (), "America/Los_Angeles"),
    DemoCustomer("soylent", "Soylent", "standard", "eu-west", (), "Europe/Dublin"),
)

WEB_DEFAULTS: dict[str, Any] = {
    "description": "the demo service: fleet-wide defaults",
    "values": {
        "traffic": {"rps": 25, "baseline_error_rate": 0.002, "baseline_latency_ms": 8},
        "branding": {"product_name": "Rollwave Demo", "color": "#1f77b4"},
        "reports": {"legacy_export": False, "max_rows": 10000},
        "public_url": "https://{{ customer }}.demo.example",
        "faults": [{
            "name": "1.1 mishandles the legacy report export",
            "when": {"version": "1.1*", "config": {"reports.legacy_export": True}},
            "error_rate": 0.4, "latency_ms": 200, "latency_jitter_ms": 40,
        }],
    },
}

ENTERPRISE_OVERLAY: dict[str, Any] = {
    "match": "tier == enterprise",
    "values": {"reports": {"max_rows": 100000}},
}


def project(verify_seconds: float) -> dict[str, Any]:
    """rollwave.yaml for the demo: local deployer, fleet verification, two policies.

    Verification is fleet-level (the engine compares each updated instance with itself before
    and with its peers, and blames the release, a customer or the infrastructure); the demo's
    times are seconds where production would use minutes, and its floors are coarse (5
    percentage points of errors, double the p95) because a demo instance serves ~25 requests
    a second.
    """
    verify = {
        "duration": "0s", "interval": "1s",
        "health": {"path": "/health"},
        "fleet": {
            "source": "scrape", "step": "1s", "interval": "2s",
            "bake": f"{verify_seconds:g}s", "baseline": "15s", "warmup": "0s",
            "checks": [
                {"name": "error-ratio", "kind": "ratio", "numerator": "errors",
                 "denominator": "requests", "allowed_increase": 1.0, "min_change": 0.05},
                {"name": "p95-latency", "kind": "gauge", "metric": "latency_p95",
                 "load": "requests", "allowed_increase": 1.0, "min_baseline": 4},
            ],
            "blame": {"min_customers": 2, "min_clearing_peers": 1, "patience": "20s",
                      "incident_min_instances": 2, "incident_fraction": 0.3},
        },
    }
    quick = {"duration": "0s", "interval": "1s", "health": {"path": "/health"}}
    return {
        "project": "rollwave-demo",
        "environments": {"production": {"description": "customer-facing", "production": True}},
        "services": {"web": {"description": "the bundled demo service", "deployer": "local"}},
        "deployers": {"local": {"kind": "local"}},
        "verification": {"default": verify, "quick": quick},
        "policies": {
            "standard": {
                "description": "internal, then early adopters (approved), then everyone",
                "on_failure": "pause",
                "waves": [
                    {"name": "internal", "select": {"match": "internal"}, "parallelism": 1,
                     "bake": "2s"},
                    {"name": "canary", "select": {"match": "early-adopter"}, "parallelism": 2,
                     "bake": "2s", "gates": ["approval"]},
                    {"name": "rest", "select": "rest", "parallelism": 5,
                     "failure_budget": 1},
                ],
            },
            "bootstrap": {
                "description": "first install of the whole fleet",
                "verification": "quick",
                "waves": [{"name": "everyone", "select": "rest", "parallelism": 6}],
            },
        },
        "default_policy": "standard",
    }


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def web_defaults(scenario: str, incident_file: Path) -> dict[str, Any]:
    """The web service's fleet-wide config for a scenario (faults included)."""
    values = dict(WEB_DEFAULTS["values"])
    if scenario == "release":
        values["faults"] = [{
            "name": "1.1 breaks the report page for everyone",
            "when": {"version": "1.1*"},
            "error_rate": 0.4, "latency_ms": 200, "latency_jitter_ms": 40,
        }]
    elif scenario == "infrastructure":
        values["faults"] = []
    values["incident_file"] = str(incident_file)
    return {**WEB_DEFAULTS, "values": values}


def write_demo_workspace(root: Path, *, verify_seconds: float = 6.0,
                         ports: list[int] | None = None, scenario: str = "customer") -> Path:
    """Write the demo workspace into ``root`` and return it."""
    ports = ports or free_ports(len(CUSTOMERS))
    customers = []
    for customer, port in zip(CUSTOMERS, ports, strict=True):
        seed = CustomerSeed(customer.id, customer.name, tier=customer.tier,
                            region=customer.region, tags=list(customer.tags),
                            timezone=customer.timezone, port=port,
                            config={"web": customer.config} if customer.config else {})
        customers.append(customer_document(seed))
    extra = {
        "config/web/defaults.yaml": dump_yaml(web_defaults(scenario,
                                                           incident_path(root))),
        "config/web/overlays/enterprise.yaml": dump_yaml(ENTERPRISE_OVERLAY),
    }
    write_workspace(root, project(verify_seconds), customers, extra, force=True)
    return root


def incident_path(root: Path) -> Path:
    """The file the demo's instances watch for an infrastructure incident."""
    return (root / ".rollwave" / "incident.json").resolve()
