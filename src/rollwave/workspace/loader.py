"""Load a workspace directory and report every problem in it at once, each with file and line.

Layout::

    rollwave.yaml            the project (environments, services, deployers, policies, ...)
    customers/<id>.yaml      one customer each
    config/<service>/...     layered configuration (see rollwave.config)
    flags/<name>.yaml        feature flags (see rollwave.flags)

:func:`load_workspace` returns a :class:`Workspace` or raises
:class:`~rollwave.errors.ValidationFailed` listing every error; warnings ride along on the
workspace. Nothing here raises a traceback for a user's mistake.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rollwave.core import tagexpr
from rollwave.core.fleet import Fleet, build_fleet
from rollwave.core.model import Customer, Policy, Project
from rollwave.errors import Problem, ValidationFailed, WorkspaceNotFound
from rollwave.yamlio import YamlDocument, load_yaml

PROJECT_FILE = "rollwave.yaml"
CUSTOMERS_DIR = "customers"
HASHED_DIRS = ("customers", "config", "flags")
STATE_DIR = ".rollwave"

M = TypeVar("M", bound=BaseModel)

#: Extra cross-file checks other packages register (config layers, flags): each gets the
#: workspace built so far and returns problems. Kept as a list so the loader needs no imports
#: from them (data flows down, never back up).
EXTRA_CHECKS: list[Callable[[Workspace], list[Problem]]] = []


@dataclass(frozen=True)
class Workspace:
    """A loaded, validated workspace."""

    root: Path
    fleet: Fleet
    documents: Mapping[str, YamlDocument]
    content_hash: str
    warnings: tuple[Problem, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def project(self) -> Project:
        return self.fleet.project

    @property
    def state_dir(self) -> Path:
        """Where local state lives (database, instance processes); git-ignored."""
        return self.root / STATE_DIR

    def policy(self, name: str | None) -> Policy:
        """The named or default policy; raises ValidationFailed naming the known ones."""
        key = name or self.project.default_policy
        try:
            return self.project.policies[key]
        except KeyError:
            known = ", ".join(sorted(self.project.policies))
            raise ValidationFailed([Problem(
                message=f"no policy named '{key}'", file=PROJECT_FILE,
                hint=f"known policies: {known}",
            )], what="policy choice") from None


def find_workspace(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding ``rollwave.yaml``."""
    env = os.environ.get("ROLLWAVE_WORKSPACE")
    here = Path(start or env or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise WorkspaceNotFound(f"no {PROJECT_FILE} in {here} or any parent directory")


def workspace_hash(root: Path) -> str:
    """sha256 over every workspace file's relative path and bytes, in a stable order."""
    digest = hashlib.sha256()
    files = [root / PROJECT_FILE]
    for sub in HASHED_DIRS:
        base = root / sub
        if base.is_dir():
            files.extend(p for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def pydantic_problems(doc: YamlDocument, error: ValidationError, base: Sequence[str | int] = (),
                      ) -> list[Problem]:
    """Translate a pydantic ValidationError into located problems."""
    problems = []
    for item in error.errors():
        loc = [part for part in item["loc"] if isinstance(part, str | int)]
        # pydantic puts union/discriminator branch names into loc; keep only real data keys
        path = _real_path(doc.data, [*base, *loc])
        kind = item["type"]
        message = str(item["msg"]).removeprefix("Value error, ")
        hint = None
        if kind == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'"
            hint = "check the spelling; `rollwave schema` lists every allowed key"
        elif kind == "missing":
            message = f"'{loc[-1]}' is required"
            hint = "add it"
        elif kind == "string_pattern_mismatch" and "0,62" in message:
            message = "ids use lower-case letters, digits, '_', '.', '-' (at most 63)"
        problems.append(doc.problem(path, message, hint))
    return problems


def _real_path(data: Any, loc: Sequence[str | int]) -> list[str | int]:
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict | list):
            if isinstance(node, dict) and isinstance(part, str) and not path[-1:] == [part]:
                # a missing or unknown key: name it even though it has no position of its own
                if part not in ("function-after", "function-before") and "[" not in part:
                    path.append(part)
            continue
    return path


def parse_model(model: type[M], doc: YamlDocument, problems: list[Problem]) -> M | None:
    """Validate ``doc`` against ``model``; on failure add located problems and return None."""
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "the file must hold a mapping (key: value pairs)",
                                    hint="see `rollwave init` for an example"))
        return None
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(doc, exc))
        return None


def _load_doc(path: Path, root: Path, problems: list[Problem]) -> YamlDocument | None:
    try:
        return load_yaml(path, display=path.relative_to(root).as_posix())
    except ValidationFailed as exc:
        problems.extend(exc.problems)
        return None


def load_workspace(root: Path | None = None, *, strict: bool = True) -> Workspace:
    """Load and validate the workspace at (or above) ``root``.

    Raises ValidationFailed with every error when ``strict`` (the default); otherwise returns
    what could be built with all problems in ``warnings``... only when the project itself parsed.
    """
    base = find_workspace(root)
    problems: list[Problem] = []
    documents: dict[str, YamlDocument] = {}

    project_doc = _load_doc(base / PROJECT_FILE, base, problems)
    project: Project | None = None
    if project_doc is not None:
        documents[PROJECT_FILE] = project_doc
        project = parse_model(Project, project_doc, problems)

    customers: dict[str, Customer] = {}
    customer_dir = base / CUSTOMERS_DIR
    files = sorted(customer_dir.glob("*.y*ml")) if customer_dir.is_dir() else []
    for path in files:
        doc = _load_doc(path, base, problems)
        if doc is None:
            continue
        documents[doc.file] = doc
        customer = parse_model(Customer, doc, problems)
        if customer is None:
            continue
        if customer.id != path.stem:
            problems.append(doc.problem(("id",), f"customer id '{customer.id}' does not match "
                                        f"its file name '{path.name}'",
                                        hint=f"rename the file to {customer.id}.yaml or fix the id"))
        if customer.id in customers:
            problems.append(doc.problem(("id",), f"duplicate customer id '{customer.id}'",
                                        hint="each customer id must be unique"))
            continue
        customers[customer.id] = customer
    if not files:
        problems.append(Problem(message="no customers yet", file=CUSTOMERS_DIR + "/",
                                severity="warning",
                                hint="add customers/<id>.yaml files (see `rollwave init`)"))

    if project is None or project_doc is None:
        _raise_if_errors(problems)
        raise ValidationFailed(problems)  # pragma: no cover - _raise_if_errors raised

    problems.extend(check_project(project, project_doc))
    problems.extend(check_customers(project, customers, documents))
    fleet = build_fleet(project, customers)
    problems.extend(check_policies(project, project_doc, fleet))
    workspace = Workspace(
        root=base, fleet=fleet, documents=documents, content_hash=workspace_hash(base),
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )
    for check in EXTRA_CHECKS:
        problems.extend(check(workspace))
    if strict:
        _raise_if_errors(problems)
    return Workspace(root=base, fleet=fleet, documents=documents,
                     content_hash=workspace.content_hash,
                     warnings=tuple(p for p in problems if p.severity == "warning" or not strict),
                     extras=workspace.extras)


def _raise_if_errors(problems: Iterable[Problem]) -> None:
    problems = list(problems)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ValidationFailed(sorted(problems, key=_sort_key))


def _sort_key(problem: Problem) -> tuple[str, int, int]:
    return (problem.file or "", problem.line or 0, problem.column or 0)


def validate_workspace(root: Path | None = None) -> list[Problem]:
    """Every problem (errors and warnings) in the workspace, sorted by file and line."""
    try:
        workspace = load_workspace(root)
    except ValidationFailed as exc:
        return sorted(exc.problems, key=_sort_key)
    return sorted(workspace.warnings, key=_sort_key)


# --- cross-file checks -----------------------------------------------------------------------


def known_deployer_kinds() -> set[str]:
    """Deployer kinds registered by adapters (imported lazily: adapters sit below the core)."""
    from rollwave.adapters.deployers import registry

    return set(registry.kinds())


def check_project(project: Project, doc: YamlDocument) -> list[Problem]:
    """References inside rollwave.yaml: deployers, verification profiles, default policy."""
    problems: list[Problem] = []
    kinds = known_deployer_kinds()
    for name, options in project.deployers.items():
        kind = options.get("kind")
        if not isinstance(kind, str):
            problems.append(doc.problem(("deployers", name), f"deployer '{name}' needs a kind",
                                        hint=f"one of: {', '.join(sorted(kinds))}"))
        elif kind not in kinds:
            problems.append(doc.problem(("deployers", name, "kind"), f"unknown deployer kind "
                                        f"'{kind}'", hint=f"one of: {', '.join(sorted(kinds))}"))
        else:
            problems.extend(_check_deployer_options(doc, name, kind, options))
    for name, service in project.services.items():
        if service.deployer not in project.deployers:
            problems.append(doc.problem(("services", name, "deployer"),
                                        f"service '{name}' uses unknown deployer "
                                        f"'{service.deployer}'",
                                        hint=_choices("deployers", project.deployers)))
        if service.verification and service.verification not in project.verification:
            problems.append(doc.problem(("services", name, "verification"),
                                        f"unknown verification profile '{service.verification}'",
                                        hint=_choices("verification profiles",
                                                      project.verification)))
    if project.default_policy not in project.policies:
        problems.append(doc.problem(("default_policy",), f"default policy "
                                    f"'{project.default_policy}' is not defined",
                                    hint=_choices("policies", project.policies)))
    for index, freeze in enumerate(project.freezes):
        for env in freeze.environments or []:
            if env not in project.environments:
                problems.append(doc.problem(("freezes", index, "environments"),
                                            f"freeze '{freeze.name}' names unknown environment "
                                            f"'{env}'",
                                            hint=_choices("environments", project.environments)))
    return problems


def _check_deployer_options(doc: YamlDocument, name: str, kind: str,
                            options: Mapping[str, Any]) -> list[Problem]:
    from rollwave.adapters.deployers import registry

    try:
        registry.options_model(kind).model_validate(
            {k: v for k, v in options.items() if k != "kind"})
    except ValidationError as exc:
        return pydantic_problems(doc, exc, base=("deployers", name))
    return []


def check_customers(project: Project, customers: Mapping[str, Customer],
                    documents: Mapping[str, YamlDocument]) -> list[Problem]:
    """Each instance's environment, services and deployer exist; local ports do not clash."""
    problems: list[Problem] = []
    ports: dict[int, str] = {}
    for customer in customers.values():
        doc = documents[f"{CUSTOMERS_DIR}/{customer.id}.yaml"] if (
            f"{CUSTOMERS_DIR}/{customer.id}.yaml" in documents) else _find_doc(documents, customer)
        for name, inst in customer.instances.items():
            at = ("instances", name)
            if inst.environment not in project.environments:
                problems.append(doc.problem((*at, "environment"), f"unknown environment "
                                            f"'{inst.environment}'",
                                            hint=_choices("environments", project.environments)))
            for index, service in enumerate(inst.services or []):
                if service not in project.services:
                    problems.append(doc.problem((*at, "services", index), f"unknown service "
                                                f"'{service}'",
                                                hint=_choices("services", project.services)))
            if inst.deployer and inst.deployer not in project.deployers:
                problems.append(doc.problem((*at, "deployer"), f"unknown deployer "
                                            f"'{inst.deployer}'",
                                            hint=_choices("deployers", project.deployers)))
            port = inst.target.get("port")
            if isinstance(port, int):
                key = f"{customer.id}/{name}"
                if port in ports:
                    problems.append(doc.problem((*at, "target", "port"),
                                                f"port {port} is also used by {ports[port]}",
                                                hint="give each local instance its own port"))
                else:
                    ports[port] = key
        for service in customer.config:
            if service not in project.services:
                problems.append(doc.problem(("config", service), f"config for unknown service "
                                            f"'{service}'",
                                            hint=_choices("services", project.services)))
    return problems


def _find_doc(documents: Mapping[str, YamlDocument], customer: Customer) -> YamlDocument:
    for doc in documents.values():
        if isinstance(doc.data, dict) and doc.data.get("id") == customer.id:
            return doc
    return YamlDocument(file=f"{CUSTOMERS_DIR}/{customer.id}.yaml", data={})


def check_policies(project: Project, doc: YamlDocument, fleet: Fleet) -> list[Problem]:
    """Policies that could never work: unknown customers, tags nobody has, bad profiles."""
    problems: list[Problem] = []
    known_names = {"customer", "instance", "environment", "tier", "region", "tag"}
    for inst in fleet:
        known_names |= set(inst.tags) | set(inst.facts.attributes)
    for name, policy in project.policies.items():
        at: tuple[str | int, ...] = ("policies", name)
        if policy.verification not in project.verification:
            problems.append(doc.problem((*at, "verification"), f"policy '{name}' uses unknown "
                                        f"verification profile '{policy.verification}'",
                                        hint=_choices("verification profiles",
                                                      project.verification)))
        for env in policy.environments or []:
            if env not in project.environments:
                problems.append(doc.problem((*at, "environments"), f"unknown environment "
                                            f"'{env}'",
                                            hint=_choices("environments", project.environments)))
        for index, wave in enumerate(policy.waves):
            wave_at = (*at, "waves", index)
            for cid in wave.select.customers or []:
                if cid not in fleet.customers:
                    problems.append(doc.problem((*wave_at, "select", "customers"),
                                                f"wave '{wave.name}' names unknown customer "
                                                f"'{cid}'", hint="customers are the ids of "
                                                "customers/*.yaml"))
            if wave.select.match and fleet.instances:
                unknown = tagexpr.names(tagexpr.parse(wave.select.match)) - known_names
                problems.extend(
                    doc.problem((*wave_at, "select", "match"),
                                f"wave '{wave.name}' tests '{tag}', which no instance has as a "
                                "tag or attribute", "check the spelling; the wave may be empty",
                                severity="warning")
                    for tag in sorted(unknown))
            if isinstance(wave.failure_budget, str) and float(wave.failure_budget[:-1]) > 100:
                problems.append(doc.problem((*wave_at, "failure_budget"),
                                            "a failure budget above 100% can never be exceeded",
                                            hint="use a count or a percentage up to 100%"))
            if wave.bake and policy.emergency is False and wave.bake > 7 * 86400:
                problems.append(doc.problem((*wave_at, "bake"), "a bake time over a week "
                                            "is almost certainly a typo",
                                            hint="write e.g. 30m or 2h"))
        if not policy.waves[-1].select.rest:
            problems.append(doc.problem(
                (*at, "waves"), f"policy '{name}' has no final 'select: rest' wave; instances no "
                "wave selects are left out of its rollouts",
                "end with a wave that selects rest unless that is intended", severity="warning"))
    return problems


def _choices(what: str, names: Iterable[str]) -> str:
    listed = ", ".join(sorted(names))
    return f"known {what}: {listed}" if listed else f"no {what} are defined yet"
