"""Generate the benchmark fleet twice: as a Rollwave workspace and as an Ansible project.

Both describe the same N hosts (default 1,000 customers with one instance ``prod`` each) whose
deploy is the same shell command (default ``sleep 0.1``):

* Rollwave, twice: ``rollwave.yaml`` with a ``kind: command`` deployer, one policy ``bench``
  with a single wave (``select: rest``, parallelism 50, no bake, no gates, failure budget 0)
  and a verification profile:

  - ``workspace/``: no checks (``health: null``, no smoke, no metrics). Since commit 34f88c1
    such a profile passes explicitly ("a successful deploy is the only signal"); before it,
    an empty profile gave an Inconclusive verdict and held every instance.
  - ``workspace-health/``: one HTTP ``GET /health`` per instance against a loopback server
    the benchmark starts (the ``url`` of every instance): the lightest real check.

* Ansible: ``inventory.yml`` with the same host names and ``ansible_connection: local``,
  ``ansible.cfg`` with ``forks = 50``, ``playbook.yml`` with ``serial: 50``,
  ``gather_facts: false`` and one ``command:`` task running the same command.

Usage: python bench/rollout/fleet.py OUT_DIR [--instances 1000] [--per-customer 1]
           [--parallelism 50] [--command "sleep 0.1"] [--port 18999]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HEALTH_PORT = 18999


def _yaml(data: Any) -> str:
    """JSON is valid YAML: no YAML library needed to write the files."""
    return json.dumps(data, indent=1) + "\n"


def host_names(instances: int, per_customer: int) -> list[tuple[str, str]]:
    """(customer id, instance name) for every instance."""
    names = []
    for i in range(instances):
        customer, index = divmod(i, per_customer)
        names.append((f"c{customer:04d}", "prod" if per_customer == 1 else f"i{index:02d}"))
    return names


def write_rollwave(root: Path, hosts: list[tuple[str, str]], *, parallelism: int, command: str,
                   verify: str, port: int) -> None:
    if verify == "health":
        profile: dict[str, Any] = {"duration": "1s", "interval": "1s",
                                   "health": {"path": "/health", "timeout": "2s"},
                                   "smoke": [], "metrics": []}
    elif verify == "none":
        profile = {"duration": "1s", "interval": "1s", "health": None, "smoke": [],
                   "metrics": []}
    else:
        raise SystemExit(f"unknown --verify {verify!r}")
    project = {
        "project": "bench",
        "environments": {"production": {"production": True}},
        "services": {"web": {"deployer": "cmd"}},
        "deployers": {"cmd": {"kind": "command", "deploy": command, "timeout": 60}},
        "verification": {"bench": profile},
        "policies": {"bench": {
            "verification": "bench", "on_failure": "pause", "on_inconclusive": "pause",
            "waves": [{"name": "all", "select": "rest", "parallelism": parallelism,
                       "bake": 0, "failure_budget": 0, "gates": []}]}},
        "default_policy": "bench",
        "freezes": [],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "rollwave.yaml").write_text(_yaml(project))
    customers = root / "customers"
    shutil.rmtree(customers, ignore_errors=True)  # a fleet of another size may be there
    customers.mkdir()
    by_customer: dict[str, list[str]] = {}
    for customer, instance in hosts:
        by_customer.setdefault(customer, []).append(instance)
    for customer, instances in by_customer.items():
        doc = {"id": customer, "name": f"Customer {customer}", "tier": "standard",
               "timezone": "UTC", "windows": [],
               "instances": {name: {"environment": "production",
                                    "url": f"http://127.0.0.1:{port}"} for name in instances}}
        (customers / f"{customer}.yaml").write_text(_yaml(doc))


def write_ansible(root: Path, hosts: list[tuple[str, str]], *, parallelism: int,
                  command: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    inventory = {"all": {
        "vars": {"ansible_connection": "local",
                 "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "hosts": {f"{c}-{i}": None for c, i in hosts}}}
    (root / "inventory.yml").write_text(_yaml(inventory))
    (root / "ansible.cfg").write_text(
        "[defaults]\n"
        f"forks = {parallelism}\n"
        "inventory = inventory.yml\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        "interpreter_python = auto_silent\n"
        "gathering = explicit\n")
    play = [{"name": "deploy", "hosts": "all", "gather_facts": False, "serial": parallelism,
             "tasks": [{"name": "deploy", "command": command, "changed_when": True}]}]
    (root / "playbook.yml").write_text(_yaml(play))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--per-customer", type=int, default=1)
    parser.add_argument("--parallelism", type=int, default=50)
    parser.add_argument("--command", default="sleep 0.1")
    parser.add_argument("--port", type=int, default=HEALTH_PORT)
    args = parser.parse_args(argv)
    hosts = host_names(args.instances, args.per_customer)
    for folder, verify in (("workspace", "none"), ("workspace-health", "health")):
        write_rollwave(args.out / folder, hosts, parallelism=args.parallelism,
                       command=args.command, verify=verify, port=args.port)
    write_ansible(args.out / "ansible", hosts, parallelism=args.parallelism,
                  command=args.command)
    (args.out / "health").mkdir(exist_ok=True)
    (args.out / "health" / "health").write_text("ok\n")  # served as GET /health
    print(f"{len(hosts)} instances in {len({c for c, _ in hosts})} customers -> {args.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
