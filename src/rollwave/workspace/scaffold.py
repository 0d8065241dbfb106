"""``rollwave init``: a commented, valid starter workspace a team can edit and commit.

The files are written from Python data (not string templates) so they are always valid YAML;
comments are added as a header per file to teach the format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollwave.errors import WorkspaceError
from rollwave.yamlio import dump_yaml

PROJECT_HEADER = """\
# Rollwave project file. Validate with `rollwave validate`; editor schema: `rollwave schema`.
#
# environments  where instances run
# services      what instances run, and which deployer puts them there
# deployers     how (kind: local runs processes here; kind: command runs your shell commands)
# verification  how an instance is checked after its deploy (health, smoke, metrics)
# policies      how a release moves through the fleet: waves, parallelism, bake, gates
"""

CUSTOMER_HEADER = """\
# One customer: its facts (tier, region, tags) select it into waves; its windows say when its
# instances may be deployed (in its own time zone); `config:` holds its customizations.
"""


@dataclass
class CustomerSeed:
    """A customer to scaffold."""

    id: str
    name: str
    tier: str = "standard"
    region: str = "eu-west"
    tags: list[str] = field(default_factory=list)
    timezone: str = "UTC"
    windows: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    port: int | None = None
    environment: str = "production"


def default_policies(bake: str = "5m", verify: str = "default") -> dict[str, Any]:
    """The starter policies: a standard three-wave rollout and an emergency hotfix."""
    return {
        "standard": {
            "description": "internal first, then early adopters, then everyone",
            "verification": verify,
            "on_failure": "pause",
            "waves": [
                {"name": "internal", "select": {"match": "internal"}, "parallelism": 1,
                 "bake": bake, "failure_budget": 0},
                {"name": "canary", "select": {"match": "early-adopter and not internal"},
                 "parallelism": 2, "bake": bake, "failure_budget": 0, "gates": ["approval"]},
                {"name": "rest", "select": "rest", "parallelism": "25%", "bake": "0s",
                 "failure_budget": "10%"},
            ],
        },
        "hotfix": {
            "description": "emergency: ignores windows and freezes, compresses bake times; "
                           "needs --reason",
            "emergency": True,
            "compress": 0.1,
            "verification": verify,
            "on_failure": "rollback",
            "waves": [
                {"name": "canary", "select": {"match": "internal or early-adopter"},
                 "parallelism": 2, "bake": "2m"},
                {"name": "rest", "select": "rest", "parallelism": "50%",
                 "failure_budget": "10%"},
            ],
        },
    }


def project_document(project: str, *, services: dict[str, Any] | None = None,
                     policies: dict[str, Any] | None = None,
                     verification: dict[str, Any] | None = None,
                     deployers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The data of a ``rollwave.yaml``."""
    return {
        "project": project,
        "environments": {
            "staging": {"description": "pre-production copies", "production": False},
            "production": {"description": "customer-facing instances", "production": True},
        },
        "services": services or {
            "web": {"description": "the product's web service (the bundled demo service)",
                    "deployer": "local"},
        },
        "deployers": deployers or {"local": {"kind": "local"}},
        "verification": verification or {
            "default": {
                "duration": "30s",
                "interval": "5s",
                "health": {"path": "/health"},
                "metrics": [
                    {"name": "errors", "metric": "error_ratio", "fail_above": 0.05},
                    {"name": "latency", "metric": "p95_latency_ms", "fail_above": 500},
                ],
            },
        },
        "policies": policies or default_policies(),
        "default_policy": "standard",
        "freezes": [],
    }


def customer_document(seed: CustomerSeed) -> dict[str, Any]:
    """The data of one ``customers/<id>.yaml``."""
    instance: dict[str, Any] = {"environment": seed.environment}
    if seed.port is not None:
        instance["target"] = {"port": seed.port}
    doc: dict[str, Any] = {
        "id": seed.id,
        "name": seed.name,
        "tier": seed.tier,
        "region": seed.region,
        "tags": seed.tags,
        "timezone": seed.timezone,
        "windows": seed.windows,
        "instances": {"prod": instance},
    }
    if seed.config:
        doc["config"] = seed.config
    return doc


def starter_customers(base_port: int = 18100) -> list[CustomerSeed]:
    """A small, varied example fleet."""
    return [
        CustomerSeed("internal", "Our own tenant", tier="internal", tags=["internal"],
                     port=base_port),
        CustomerSeed("acme", "Acme Corp", tier="enterprise", region="eu-west",
                     tags=["early-adopter"], timezone="Europe/Berlin",
                     windows=[{"days": "daily", "start": "00:00", "end": "24:00"}],
                     port=base_port + 1),
        CustomerSeed("globex", "Globex", tier="standard", region="us-east",
                     timezone="America/New_York",
                     windows=[{"days": "mon-fri", "start": "20:00", "end": "06:00"}],
                     config={"web": {"reports": {"legacy_export": True}}},
                     port=base_port + 2),
    ]


def write_workspace(root: Path, project: dict[str, Any], customers: list[dict[str, Any]],
                    extra_files: dict[str, str] | None = None, *,
                    force: bool = False) -> list[Path]:
    """Write a workspace; refuses to overwrite any existing file unless ``force``.

    Raises :class:`WorkspaceError` (never an ``OSError``) when ``root`` cannot be written.
    """
    files = {"rollwave.yaml": PROJECT_HEADER + "\n" + dump_yaml(project),
             ".gitignore": ".rollwave/\n"}
    for doc in customers:
        files[f"customers/{doc['id']}.yaml"] = CUSTOMER_HEADER + "\n" + dump_yaml(doc)
    files.update(extra_files or {})
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root} is a file, not a directory",
                             hint="pass a new or empty directory: `rollwave init DIR`")
    existing = sorted(rel for rel in files if (root / rel).exists())
    if existing and not force:
        shown = ", ".join(existing[:5]) + (" …" if len(existing) > 5 else "")
        what = (f"{root / 'rollwave.yaml'} already exists" if "rollwave.yaml" in existing
                else f"{root} already has {shown}")
        raise WorkspaceError(what, hint="pick an empty directory, or pass --force to "
                                        f"overwrite {shown}")
    written = []
    try:
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise WorkspaceError(f"cannot write the workspace in {root}: {exc.strerror} "
                             f"({exc.filename})",
                             hint="check the directory's permissions and free space") from None
    return written


def init_workspace(root: Path, project: str = "my-saas", *, force: bool = False) -> list[Path]:
    """Create the starter workspace at ``root``."""
    customers = [customer_document(seed) for seed in starter_customers()]
    return write_workspace(root, project_document(project), customers, force=force)
