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

import difflib
import functools
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rollwave.core import tagexpr
from rollwave.core.fleet import Fleet, build_fleet
from rollwave.core.model import Customer, Instance, Policy, Project
from rollwave.errors import Problem, ValidationFailed, WorkspaceNotFound
from rollwave.yamlio import YamlDocument, format_path, load_yaml

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
    if not here.exists():
        raise WorkspaceNotFound(f"workspace directory {here} does not exist")
    for candidate in (here, *here.parents):
        project = candidate / PROJECT_FILE
        if project.is_file():
            return candidate
        if project.exists() or project.is_symlink():
            raise WorkspaceNotFound(
                f"{project} is not a readable file (a directory, a broken link or a device)",
                hint=f"make {PROJECT_FILE} a plain YAML file, or run `rollwave init DIR` "
                     "elsewhere")
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
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:  # reported by whoever reads the file; the hash just marks it
            digest.update(b"\0unreadable")
    return digest.hexdigest()


def pydantic_problems(doc: YamlDocument, error: ValidationError, base: Sequence[str | int] = (),
                      ) -> list[Problem]:
    """Translate a pydantic ValidationError into located problems (one per wrong value)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for item in error.errors():
        loc = [part for part in item["loc"] if isinstance(part, str | int)]
        # pydantic puts union/discriminator branch names into loc; keep only real data keys
        path = _real_path(doc.data, [*base, *loc])
        message, hint = _explain(item, loc)
        problem = doc.problem(path, message, hint)
        key = format_path(path)
        if key in seen and _is_union_branch(item, path):
            # one wrong value failing several union branches: keep the most helpful message
            if "%" in message:
                problems[seen[key]] = problem
            continue
        seen[key] = len(problems)
        problems.append(problem)
    return problems


def _explain(item: Any, loc: Sequence[str | int]) -> tuple[str, str | None]:  # noqa: PLR0911
    """Message and hint for one pydantic error, in the words of the workspace files."""
    kind = item["type"]
    value = item.get("input")
    last = loc[-1] if loc else ""
    message = str(item["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(last), _known_keys(), n=1, cutoff=0.75)
        return f"unknown key '{last}'", (
            (f"did you mean '{close[0]}'? " if close else "check the spelling; ")
            + "`rollwave schema` lists every allowed key")
    if kind == "missing":
        return f"'{last}' is required", "add it"
    if kind == "string_pattern_mismatch" and "0,62" in message:
        return (f"{_shown(value)} is not a valid id: ids use lower-case letters, digits, '_', "
                "'.', '-' and start with a letter or digit (at most 63)",
                "ids end up in file names, URLs and commands, so they are kept plain")
    if kind == "string_pattern_mismatch" and "%$" in message:
        return f"{_shown(value)} is neither a count (e.g. 5) nor a percentage (e.g. 25%)", None
    if kind == "string_type" and isinstance(value, list | dict):
        return ("expected text but found a " + ("list" if isinstance(value, list) else
                                                "mapping"),
                "write a single value, e.g. tier: enterprise")
    if kind == "string_type" and isinstance(value, bool):
        return (f"expected text but YAML read the boolean {str(value).lower()} here",
                "put the value in quotes; YAML reads yes/no/on/off/true/false as booleans")
    if kind == "string_type" and isinstance(value, int | float):
        return (f"expected text but YAML read the number {_shown(value)} here",
                "put the value in quotes")
    if kind == "too_short" and isinstance(last, str):
        return f"'{last}' needs at least one entry", None
    if message.startswith("Input should") and isinstance(last, str) and last:
        return f"'{last}' should" + message.removeprefix("Input should"), None
    if kind == "value_error" and last == "match":
        return message, ("tag expressions look like: early-adopter and not tier == "
                         "enterprise, region in (eu-west, eu-central), (a or b) and c")
    return message, None


@functools.cache
def _known_keys() -> tuple[str, ...]:
    """Every key the workspace models accept (for "did you mean" hints)."""
    keys: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                keys.update(props)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    for model in (Project, Customer):
        collect(model.model_json_schema())
    return tuple(sorted(keys))


def _is_union_branch(item: Any, path: Sequence[str | int]) -> bool:
    loc = item["loc"]
    return bool(loc) and isinstance(loc[-1], str) and (not path or path[-1] != loc[-1])


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_child(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _real_path(data: Any, loc: Sequence[str | int]) -> list[str | int]:
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if _has_child(node, part):
            node = node[part]
            path.append(part)
        elif (isinstance(node, dict) and isinstance(part, str) and index == len(loc) - 1
              and "[" not in part and not part.startswith("function-")):
            # a missing or unknown key: name it even though it has no position of its own;
            # intermediate names that are not in the data are union branches: skipped
            path.append(part)
    return path


def parse_model(model: type[M], doc: YamlDocument, problems: list[Problem]) -> M | None:
    """Validate ``doc`` against ``model``; on failure add located problems and return None."""
    if not isinstance(doc.data, dict):
        problems.append(doc.problem((), "the file must hold a mapping (key: value pairs)",
                                    hint="see `rollwave init` for an example"))
        return None
    renamed = [doc.problem(key_path, f"the key {written!r} is read by YAML as "
                           f"'{key_path[-1]}'", hint=f"quote it: '{written}':")
               for key_path, written in doc.renamed_keys.items()]
    problems.extend(renamed)
    try:
        parsed = model.model_validate(doc.data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(doc, exc))
        return None
    return None if renamed else parsed


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

    customers, customer_docs, customer_files = _load_customers(base, problems)
    documents.update({doc.file: doc for doc in customer_docs.values()})

    if project is None or project_doc is None:
        if project_doc is not None:  # still report what can be checked without the model
            from rollwave.verification.policy import check_raw_metric_sources

            problems.extend(check_raw_deployers(project_doc))
            problems.extend(check_raw_metric_sources(project_doc))
        _raise_if_errors(problems)
        raise ValidationFailed(problems)  # pragma: no cover - _raise_if_errors raised

    problems.extend(check_project(project, project_doc))
    problems.extend(check_customers(project, customers, {**documents, **{
        f"{CUSTOMERS_DIR}/{cid}.yaml": doc for cid, doc in customer_docs.items()}}))
    fleet = build_fleet(project, customers)
    unreadable = frozenset(customer_files) - set(customers)
    problems.extend(check_policies(project, project_doc, fleet, unreadable))
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


def _load_customers(base: Path, problems: list[Problem],
                    ) -> tuple[dict[str, Customer], dict[str, YamlDocument], list[str]]:
    """Every ``customers/*.yaml`` (and ``.yml``) file, parsed; problems are appended.

    Returns the customers that loaded, their documents, and the stem of every customer file.
    """
    customers: dict[str, Customer] = {}
    docs: dict[str, YamlDocument] = {}
    customer_dir = base / CUSTOMERS_DIR
    try:
        entries = sorted(customer_dir.iterdir()) if customer_dir.is_dir() else []
    except OSError as exc:
        problems.append(Problem(message=f"cannot list the folder: {exc.strerror}",
                                file=CUSTOMERS_DIR + "/", code="yaml.io"))
        entries = []
    files: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):  # editor swap and lock files, .gitkeep
            continue
        if entry.suffix.lower() in (".yaml", ".yml"):
            files.append(entry)
        elif entry.is_dir():
            problems.append(Problem(
                message=f"folder {CUSTOMERS_DIR}/{entry.name}/ is not read", severity="warning",
                file=f"{CUSTOMERS_DIR}/{entry.name}/",
                hint="customer files sit directly in customers/ (customers/<id>.yaml)"))
    for path in files:
        doc = _load_doc(path, base, problems)
        if doc is None:
            continue
        customer = parse_model(Customer, doc, problems)
        if customer is None:
            continue
        if customer.id != path.stem:
            problems.append(doc.problem(("id",), f"customer id '{customer.id}' does not match "
                                        f"its file name '{path.name}'",
                                        hint=f"rename the file to {customer.id}.yaml or fix "
                                             "the id"))
        if customer.id in customers:
            problems.append(doc.problem(("id",), f"duplicate customer id '{customer.id}' (also "
                                        f"in {docs[customer.id].file})",
                                        hint="each customer id must be unique"))
            continue
        customers[customer.id] = customer
        docs[customer.id] = doc
    if not files:
        problems.append(Problem(message="no customers yet", file=CUSTOMERS_DIR + "/",
                                severity="warning",
                                hint="add customers/<id>.yaml files (see `rollwave init`)"))
    return customers, docs, [path.stem for path in files]


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
    """References inside rollwave.yaml: deployers, verification profiles, default policy,
    metric sources and fleet analysis (``rollwave.verification.policy``)."""
    from rollwave.verification.policy import check_metric_sections

    problems = check_deployers(project.deployers, doc)
    problems.extend(check_metric_sections(project, doc))
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


def check_deployers(deployers: Mapping[str, Any], doc: YamlDocument) -> list[Problem]:
    """Each deployer has a known ``kind`` and options that kind accepts."""
    problems: list[Problem] = []
    kinds = known_deployer_kinds()
    for name, options in deployers.items():
        kind = options.get("kind") if isinstance(options, Mapping) else None
        if not isinstance(options, Mapping):
            continue  # the model reports a deployer that is not a mapping
        if not isinstance(kind, str):
            problems.append(doc.problem(("deployers", name), f"deployer '{name}' needs a kind",
                                        hint=f"one of: {', '.join(sorted(kinds))}"))
        elif kind not in kinds:
            problems.append(doc.problem(("deployers", name, "kind"), f"unknown deployer kind "
                                        f"'{kind}'", hint=f"one of: {', '.join(sorted(kinds))}"))
        else:
            problems.extend(_check_deployer_options(doc, name, kind, options))
    return problems


def check_raw_deployers(doc: YamlDocument) -> list[Problem]:
    """:func:`check_deployers` on the raw data, when the project as a whole did not validate."""
    data = doc.data if isinstance(doc.data, dict) else {}
    deployers = data.get("deployers")
    if not isinstance(deployers, dict):
        return []
    return check_deployers({str(k): v for k, v in deployers.items()}, doc)


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
            problems.extend(
                doc.problem((*at, "services", index), f"unknown service '{service}'",
                            hint=_choices("services", project.services))
                for index, service in enumerate(inst.services or [])
                if service not in project.services)
            if inst.deployer and inst.deployer not in project.deployers:
                problems.append(doc.problem((*at, "deployer"), f"unknown deployer "
                                            f"'{inst.deployer}'",
                                            hint=_choices("deployers", project.deployers)))
            if inst.deployer is None:
                problems.extend(_mixed_deployers(doc, at, project, inst))
            if _deployer_kind(project, inst) == "local":
                problems.extend(_check_local_ports(doc, at, f"{customer.id}/{name}", project,
                                                   inst, ports))
        problems.extend(
            doc.problem(("config", service), f"config for unknown service '{service}'",
                        hint=_choices("services", project.services))
            for service in customer.config if service not in project.services)
    return problems


def _mixed_deployers(doc: YamlDocument, at: tuple[str, str], project: Project,
                     inst: Instance) -> list[Problem]:
    """An instance is deployed by one deployer: its services must agree on it."""
    services = inst.services if inst.services is not None else list(project.services)
    by_service = {s: project.services[s].deployer for s in services if s in project.services}
    if len(set(by_service.values())) <= 1:
        return []
    listed = ", ".join(f"{s}: {d}" for s, d in by_service.items())
    return [doc.problem(at, f"instance '{at[1]}' runs services with different deployers "
                        f"({listed}), but an instance is deployed by one deployer",
                        hint="set `deployer:` on the instance, list only its services under "
                             "`services:`, or split it into one instance per deployer")]


def _deployer_kind(project: Project, inst: Instance) -> str | None:
    services = inst.services if inst.services is not None else list(project.services)
    name = inst.deployer
    if name is None:
        known = [project.services[s].deployer for s in services if s in project.services]
        name = known[0] if known else "local"
    kind = project.deployers.get(name, {}).get("kind")
    return kind if isinstance(kind, str) else None


def _check_local_ports(doc: YamlDocument, at: tuple[str, str], key: str, project: Project,
                       inst: Instance, ports: dict[int, str]) -> list[Problem]:
    """Ports of a ``local`` instance: valid, and used by no other local instance here.

    The local deployer gives a service ``target.ports.<service>`` or else ``target.port`` plus
    the service's position among the instance's services.
    """
    problems: list[Problem] = []
    services = inst.services if inst.services is not None else list(project.services)
    explicit = inst.target.get("ports")
    explicit = explicit if isinstance(explicit, dict) else {}
    base = inst.target.get("port")
    for index, service in enumerate(services):
        where: tuple[str, ...]
        if service in explicit:
            value, where = explicit[service], (*at, "target", "ports", service)
        elif base is not None:
            value, where = base, (*at, "target", "port")
        else:
            continue  # the local deployer reports a missing port when it deploys
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            problem = doc.problem(where, f"{_shown(value)} is not a port number (1-65535)",
                                  hint="write e.g. port: 8101")
            if problem not in problems:  # one base port serves several services
                problems.append(problem)
            continue
        port = value if service in explicit else value + index
        owner = f"{key} ({service})"
        if port > 65535:
            problems.append(doc.problem(where, f"service '{service}' would get port {port}, "
                                        "above 65535", hint="choose a lower port"))
        elif port in ports:
            problems.append(doc.problem(where, f"port {port} of {owner} is also used by "
                                        f"{ports[port]}",
                                        hint="give each local instance its own port (an "
                                             "instance's services use port, port+1, ...)"))
        else:
            ports[port] = owner
    return problems


def _find_doc(documents: Mapping[str, YamlDocument], customer: Customer) -> YamlDocument:
    for doc in documents.values():
        if isinstance(doc.data, dict) and doc.data.get("id") == customer.id:
            return doc
    return YamlDocument(file=f"{CUSTOMERS_DIR}/{customer.id}.yaml", data={})


def check_policies(project: Project, doc: YamlDocument, fleet: Fleet,
                   unreadable: frozenset[str] = frozenset()) -> list[Problem]:
    """Policies that could never work: unknown customers, tags nobody has, bad profiles.

    ``unreadable`` are ids of customer files that exist but did not load: they are not
    reported again as unknown, and tag warnings wait until every customer loads.
    """
    problems: list[Problem] = []
    known_names = {"customer", "instance", "environment", "tier", "region", "tag"}
    known_tags: set[str] = set()
    for inst in fleet:
        known_tags |= set(inst.tags)
        known_names |= set(inst.tags) | set(inst.facts.attributes)
    for name, policy in project.policies.items():
        at: tuple[str | int, ...] = ("policies", name)
        if policy.verification not in project.verification:
            problems.append(doc.problem((*at, "verification"), f"policy '{name}' uses unknown "
                                        f"verification profile '{policy.verification}'",
                                        hint=_choices("verification profiles",
                                                      project.verification)))
        problems.extend(
            doc.problem((*at, "environments", i), f"unknown environment '{env}'",
                        hint=_choices("environments", project.environments))
            for i, env in enumerate(policy.environments or [])
            if env not in project.environments)
        for index, wave in enumerate(policy.waves):
            wave_at = (*at, "waves", index)
            problems.extend(
                doc.problem((*wave_at, "select", "customers", i),
                            f"wave '{wave.name}' names unknown customer '{cid}'",
                            hint="customers are the ids of customers/*.yaml")
                for i, cid in enumerate(wave.select.customers or [])
                if cid not in fleet.customers and cid not in unreadable)
            if wave.select.match and fleet.instances and not unreadable:
                expr = tagexpr.parse(wave.select.match)
                unknown = (tagexpr.names(expr) - known_names) | (
                    tagexpr.tested_tags(expr) - known_tags)
                problems.extend(
                    doc.problem((*wave_at, "select", "match"),
                                f"wave '{wave.name}' tests '{tag}', which no instance has as a "
                                "tag or attribute", "check the spelling; the wave may be empty",
                                severity="warning")
                    for tag in sorted(unknown))
        if not policy.waves[-1].select.rest:
            problems.append(doc.problem(
                (*at, "waves"), f"policy '{name}' has no final 'select: rest' wave; instances no "
                "wave selects are left out of its rollouts",
                "end with a wave that selects rest unless that is intended", severity="warning"))
    return problems


def _choices(what: str, names: Iterable[str]) -> str:
    listed = ", ".join(sorted(names))
    return f"known {what}: {listed}" if listed else f"no {what} are defined yet"
