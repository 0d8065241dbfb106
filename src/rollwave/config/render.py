"""Render and validate per-instance configs: layers → merge → templates → hash → schema.

For each (instance, service) the layer stack is: service defaults, the instance's environment,
the overlays whose ``match:`` selects the instance (by priority, then name), the customer's
``config:`` and the instance's ``config:``. Work is shared wherever the inputs are the same:

- overlays are matched once per distinct combination of the facts they test;
- defaults + environment + overlays are merged (and checked for equal-rank conflicts) once per
  combination; a customer's layer once per customer and combination;
- a stack without instance-dependent templates is rendered and hashed once;
- templates are compiled once per source text; schemas once per file; each distinct config (by
  hash) and each shared section of a config is validated once.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rollwave.config.merge import find_conflicts, merge_stack, merge_tree, trace_stack, written
from rollwave.config.model import (
    ITEMS_MARKER,
    ConfigIssue,
    ConfigLimits,
    Layer,
    LayerRef,
    ListOp,
    ModeTree,
    Provenance,
    RenderedConfig,
    Setting,
    display_path,
)
from rollwave.config.schema import SchemaSource, ValidationRun, choose_schema
from rollwave.config.sources import ConfigSources, ServiceSources, load_sources
from rollwave.config.templating import Session, Trie, finalize, find_markers
from rollwave.core import tagexpr
from rollwave.core.fleet import FleetInstance
from rollwave.core.hashing import config_hash
from rollwave.errors import ConfigError, InstanceNotFound, Problem, ValidationFailed
from rollwave.workspace.loader import Workspace
from rollwave.yamlio import JsonPath

ConfigKey = tuple[str, str]
"""``(instance_key, service)``."""


class _Stack:
    """A merged layer stack, shared by every instance whose stack it is."""

    __slots__ = ("_hash", "_provenance", "_refs", "_values", "conflicts", "dynamic", "layers",
                 "modes", "tree", "trie")

    def __init__(self, layers: tuple[Layer, ...], tree: dict[str, Any], modes: ModeTree,
                 conflicts: list[ConfigIssue] | None = None) -> None:
        self.layers = layers
        self.tree = tree
        self.modes = modes
        self.conflicts = conflicts or []
        trie, dynamic = find_markers(tree)
        self.trie: Trie | None = trie if isinstance(trie, dict) else None
        self.dynamic = dynamic
        self._values: dict[str, Any] | None = None
        self._hash: str | None = None
        self._refs: tuple[LayerRef, ...] | None = None
        self._provenance: Provenance | None = None

    def extend(self, layer: Layer) -> _Stack:
        tree = merge_tree(self.tree, layer.tree, self.modes, layer.has_ops)
        return _Stack((*self.layers, layer), tree, self.modes, self.conflicts)

    def static(self) -> tuple[dict[str, Any], str]:
        """Values and hash of a stack whose markers are all fixed secret references."""
        if self._values is None or self._hash is None:
            self._values = finalize(self.tree, self.trie, None) if self.trie else self.tree
            self._hash = config_hash(self._values)
        return self._values, self._hash

    def refs(self) -> tuple[LayerRef, ...]:
        if self._refs is None:
            self._refs = tuple(layer.ref() for layer in self.layers)
        return self._refs

    def __call__(self) -> Provenance:
        """The stack is its configs' provenance tracer (no bound method per config)."""
        return self.provenance()

    def provenance(self) -> Provenance:
        if self._provenance is None:
            _, settings = trace_stack(self.layers, self.modes)
            self._provenance = {path: found for path, found in settings.items()
                                if _exists(self.tree, path)}
        return self._provenance


def _exists(tree: Any, path: JsonPath) -> bool:
    node = tree
    for part in path:
        try:
            node = node[part]
        except (LookupError, TypeError):
            return False
    return True


class _ServiceState:
    """Caches of one service: matched overlays, merged prefixes, customer stacks."""

    def __init__(self, src: ServiceSources) -> None:
        self.src = src
        names: set[str] = set()
        for overlay in src.overlays:
            assert overlay.expr is not None
            names |= tagexpr.names(overlay.expr)
        self.names = tuple(sorted(names))
        self.matched: dict[Any, tuple[Layer, ...]] = {}
        self.prefixes: dict[tuple[str, tuple[Layer, ...]], _Stack] = {}
        self.uppers: dict[tuple[_Stack, Layer], _Stack] = {}

    def overlays_for(self, inst: FleetInstance) -> tuple[Layer, ...]:
        if not self.src.overlays:
            return ()
        attrs = inst.facts.attributes
        signature = (tuple(attrs.get(name) for name in self.names), inst.facts.tags)
        found = self.matched.get(signature)
        if found is None:
            found = tuple(o for o in self.src.overlays
                          if o.expr is not None and tagexpr.evaluate(o.expr, inst.facts))
            self.matched[signature] = found
        return found

    def prefix_for(self, inst: FleetInstance) -> _Stack:
        overlays = self.overlays_for(inst)
        key = (inst.environment, overlays)
        found = self.prefixes.get(key)
        if found is None:
            found = self._prefix(inst.environment, overlays)
            self.prefixes[key] = found
        return found

    def _prefix(self, environment: str, overlays: tuple[Layer, ...]) -> _Stack:
        src = self.src
        layers: list[Layer] = [src.defaults] if src.defaults is not None else []
        env = src.environments.get(environment)
        if env is not None:
            layers.append(env)
        layers.extend(overlays)
        conflicts = _rank_conflicts(src.name, overlays, src.modes)
        return _Stack(tuple(layers), merge_stack(layers, src.modes), src.modes, conflicts)

    def with_customer(self, prefix: _Stack, layer: Layer) -> _Stack:
        key = (prefix, layer)
        found = self.uppers.get(key)
        if found is None:
            found = prefix.extend(layer)
            self.uppers[key] = found
        return found


def _rank_conflicts(service: str, overlays: Sequence[Layer], modes: ModeTree,
                    ) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for index, first in enumerate(overlays):
        for second in overlays[index + 1:]:
            if second.priority != first.priority:
                continue
            for path, lpath, rpath in find_conflicts(first.tree, second.tree, modes):
                left = f"{first.file}:{first.line_of(lpath)}"
                right = f"{second.file}:{second.line_of(rpath)}"
                issues.append(ConfigIssue(
                    instance="", service=service, path=display_path(path),
                    file=first.file, line=first.line_of(lpath), code="config.conflict",
                    message=(f"overlays '{first.name}' ({left}) and '{second.name}' ({right}) "
                             f"both apply at priority {first.priority} and set "
                             f"{display_path(path)} to different values "
                             f"({_short(_at(first.tree, lpath))} vs "
                             f"{_short(_at(second.tree, rpath))})"),
                    hint="make them agree, give one a higher 'priority:', or narrow a 'match:'",
                ))
    return issues


def _at(tree: Any, path: JsonPath) -> Any:
    node = tree
    for part in path:
        node = node.items if isinstance(node, ListOp) and part == ITEMS_MARKER else node[part]
    return written(node)


def _short(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def instance_facts(inst: FleetInstance, customer_name: str | None) -> dict[str, Any]:
    """What templates can read about an instance (``service``/``version`` added per render)."""
    facts: dict[str, Any] = {
        "customer": inst.customer,
        "instance": inst.name,
        "key": inst.key,
        "environment": inst.environment,
        "tags": sorted(inst.tags),
        "labels": dict(inst.labels),
        "target": dict(inst.target),
    }
    optional = {"customer_name": customer_name, "tier": inst.tier, "region": inst.region,
                "url": inst.url, "host": inst.target.get("host"),
                "port": inst.target.get("port")}
    facts.update({k: v for k, v in optional.items() if v is not None})
    return facts


@dataclass
class FleetReport:
    """Rendered configs of a fleet plus every issue, per instance (see :meth:`problems`)."""

    configs: dict[ConfigKey, RenderedConfig] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)
    source_problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues and not any(p.severity == "error" for p in self.source_problems)

    def invalid(self) -> set[ConfigKey]:
        """The (instance, service) pairs that failed to render or validate."""
        return {(i.instance, i.service) for i in self.issues if i.severity == "error"}

    def problems(self, *, group: bool = True, examples: int = 3) -> list[Problem]:
        """Source problems, then issues; identical issues of many instances become one.

        An issue the source check already reports (a template that does not compile) is left
        out: the config still counts as invalid in :meth:`invalid`.
        """
        known = {(p.file, p.line, p.message) for p in self.source_problems}
        issues = [i for i in self.issues if (i.file, i.line, i.message) not in known]
        sources = sorted(self.source_problems, key=lambda p: (p.file or "", p.line or 0))
        return [*sources, *issues_to_problems(issues, group=group, examples=examples)]


class Renderer:
    """Renders configs of one workspace, sharing work across calls (not thread-safe)."""

    def __init__(self, workspace: Workspace, limits: ConfigLimits | None = None) -> None:
        self.workspace = workspace
        self.sources: ConfigSources = load_sources(workspace, limits)
        self.engine = self.sources.engine
        self._states: dict[str, _ServiceState] = {}
        self._facts: dict[str, dict[str, Any]] = {}
        self._runs: dict[int, tuple[SchemaSource, ValidationRun]] = {}

    def state(self, service: str) -> _ServiceState:
        found = self._states.get(service)
        if found is None:
            found = _ServiceState(self.sources.services[service])
            self._states[service] = found
        return found

    def facts(self, inst: FleetInstance) -> dict[str, Any]:
        found = self._facts.get(inst.key)
        if found is None:
            customer = self.workspace.fleet.customers.get(inst.customer)
            found = instance_facts(inst, customer.name if customer else None)
            self._facts[inst.key] = found
        return found

    def render(self, inst: FleetInstance, service: str, version: str | None,
               ) -> RenderedConfig | list[ConfigIssue]:
        """One config, or the issues that kept it from rendering."""
        return self.render_stack(inst, service, version)[0]

    def render_stack(self, inst: FleetInstance, service: str, version: str | None,
                     ) -> tuple[RenderedConfig | list[ConfigIssue], _Stack]:
        """:meth:`render` plus the merged stack it rendered from (for :meth:`validate`)."""
        state = self.state(service)
        stack = state.prefix_for(inst)
        if stack.conflicts:
            return [_for(issue, inst.key) for issue in stack.conflicts], stack
        customer_layer = self.sources.customer_layers.get((inst.customer, service))
        if customer_layer is not None:
            stack = state.with_customer(stack, customer_layer)
        instance_layer = self.sources.instance_layers.get((inst.key, service))
        if instance_layer is not None:
            stack = stack.extend(instance_layer)
        if not stack.dynamic:
            values, digest = stack.static()
        else:
            extra = {"service": service} if version is None else {"service": service,
                                                                   "version": version}
            session = Session(self.engine, stack.tree, self.facts(inst), extra)
            values = finalize(stack.tree, stack.trie or {}, session)
            session.close()
            if session.failures:
                return _template_issues(session, inst.key, service), stack
            digest = config_hash(values)
        schema = self.schema_for(service, version)
        return RenderedConfig(instance=inst.key, service=service, values=values, hash=digest,
                              version=version, schema=schema.file if schema else None,
                              layers=stack.refs(), tracer=stack), stack

    def schema_for(self, service: str, version: str | None) -> SchemaSource | None:
        src = self.sources.services[service]
        return choose_schema(src.schema, src.schemas, version)

    def validate(self, config: RenderedConfig, stack: _Stack | None = None,
                 ) -> Sequence[ConfigIssue]:
        """Schema errors of one rendered config, each located at the layer that set it.

        ``stack`` (what :meth:`render` rendered it from) lets configs of one stack share work.
        """
        source = self.schema_for(config.service, config.version)
        if source is None:
            return _NO_ISSUES
        entry = self._runs.get(id(source))
        if entry is None:
            entry = (source, ValidationRun(self.sources.compiled(source)))
            self._runs[id(source)] = entry
        errors = (entry[1].validate(config.values, config.hash, stack.tree, stack.trie)
                  if stack is not None and stack.dynamic else
                  entry[1].validate(config.values, config.hash))
        if not errors:
            return _NO_ISSUES
        issues = []
        for error in errors:
            settings = config.settings_at(error.path)
            where: Setting | None = settings[-1] if settings else None
            issues.append(ConfigIssue(
                instance=config.instance, service=config.service,
                path=display_path(error.path), message=error.message,
                file=where.file if where else source.file, line=where.line if where else None,
                code="config.schema",
                hint=f"fix the value or the schema {source.file}" if where else
                f"add the value in a layer, or change the schema {source.file}"))
        return issues


_NO_ISSUES: tuple[ConfigIssue, ...] = ()


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector during a batch render.

    A fleet render allocates hundreds of thousands of long-lived, acyclic objects (configs
    are dicts, lists and strings, freed by reference counting); each full collection would
    re-scan all of them for cycles that cannot exist (about a quarter of the render time at
    10,000 instances). Collection resumes, as it was, when the batch ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _for(issue: ConfigIssue, instance: str) -> ConfigIssue:
    return ConfigIssue(instance=instance, service=issue.service, message=issue.message,
                       path=issue.path, file=issue.file, line=issue.line, code=issue.code,
                       hint=issue.hint, severity=issue.severity)


def _template_issues(session: Session, instance: str, service: str) -> list[ConfigIssue]:
    issues = []
    for failure in session.failures:
        template = failure.template
        issues.append(ConfigIssue(
            instance=instance, service=service, path=display_path(failure.path),
            message=failure.message, file=template.file if template else None,
            line=template.line if template else None, code="config.template",
            hint="templates see the instance's facts and config (docs/configuration.md)"))
    return issues


def issues_to_problems(issues: Iterable[ConfigIssue], *, group: bool = True,
                       examples: int = 3) -> list[Problem]:
    """Problems from issues; with ``group`` identical issues of many instances become one."""
    buckets: dict[tuple[Any, ...], list[ConfigIssue]] = {}
    for issue in issues:
        key = issue.group_key() if group else (*issue.group_key(), issue.instance)
        buckets.setdefault(key, []).append(issue)
    problems = []
    for found in buckets.values():
        first = found[0]
        names = sorted({issue.instance for issue in found})
        who = ", ".join(names[:examples])
        if len(names) > examples:
            who += f" and {len(names) - examples:,} more ({len(names):,} instances)"
        problems.append(Problem(message=f"{who}: {first.service}: {first.message}",
                                file=first.file, line=first.line, path=first.path,
                                hint=first.hint, code=first.code, severity=first.severity))
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.message))


def _select(workspace: Workspace, services: Iterable[str] | None,
            instances: Iterable[str] | None) -> tuple[list[str], list[FleetInstance]]:
    known = workspace.project.services
    wanted = list(services) if services is not None else list(known)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ConfigError(f"unknown service '{unknown[0]}'",
                          hint="known services: " + ", ".join(sorted(known)))
    if instances is None:
        return wanted, list(workspace.fleet)
    chosen = []
    for key in instances:
        inst = workspace.fleet.get(key)
        if inst is None:
            raise InstanceNotFound(f"no instance '{key}'")
        chosen.append(inst)
    return wanted, chosen


def render_report(workspace: Workspace, *, services: Iterable[str] | None = None,
                  versions: Mapping[str, str] | None = None,
                  instance_versions: Mapping[ConfigKey, str] | None = None,
                  instances: Iterable[str] | None = None, validate: bool = True,
                  limits: ConfigLimits | None = None,
                  renderer: Renderer | None = None) -> FleetReport:
    """Render (and validate) every config of the chosen instances and services.

    ``versions`` maps a service to the version a release brings (it picks the schema and is
    ``version`` in templates); ``instance_versions`` overrides it per ``(instance, service)``
    (e.g. a config-only release: each instance keeps the version it runs). Configs that fail
    to render are missing from ``configs``; invalid ones are present and listed in ``issues``.
    """
    renderer = renderer or Renderer(workspace, limits)
    versions = versions or {}
    per_instance = instance_versions or {}
    wanted, chosen = _select(workspace, services, instances)
    known = {(p.file, p.line, p.message) for p in workspace.warnings}
    report = FleetReport(source_problems=[  # warnings the loader already reported are left out
        p for p in renderer.sources.problems
        if p.severity == "error" or (p.file, p.line, p.message) not in known])
    with _cyclic_gc_paused():
        for service in wanted:
            version = versions.get(service)
            for inst in chosen:
                if service not in inst.services:
                    continue
                if per_instance:
                    version = per_instance.get((inst.key, service), versions.get(service))
                result, stack = renderer.render_stack(inst, service, version)
                if isinstance(result, list):
                    report.issues.extend(result)
                    continue
                report.configs[(inst.key, service)] = result
                if validate:
                    report.issues.extend(renderer.validate(result, stack))
    return report


def render_fleet(workspace: Workspace, *, services: Iterable[str] | None = None,
                 versions: Mapping[str, str] | None = None,
                 instance_versions: Mapping[ConfigKey, str] | None = None,
                 instances: Iterable[str] | None = None, validate: bool = True,
                 limits: ConfigLimits | None = None,
                 ) -> tuple[dict[ConfigKey, RenderedConfig], list[Problem]]:
    """Every ``(instance_key, service)`` config, plus the problems (grouped across instances).

    Problems include the config files' own problems, render failures (conflicts, templates)
    and, with ``validate``, schema errors located at the layer file:line that set the value.
    """
    report = render_report(workspace, services=services, versions=versions,
                           instance_versions=instance_versions, instances=instances,
                           validate=validate, limits=limits)
    return report.configs, report.problems()


def validate_configs(workspace: Workspace, versions: Mapping[str, str] | None = None, *,
                     instance_versions: Mapping[ConfigKey, str] | None = None,
                     services: Iterable[str] | None = None,
                     instances: Iterable[str] | None = None, group: bool = True,
                     limits: ConfigLimits | None = None) -> list[Problem]:
    """Every problem with the rendered configs (errors block a rollout; warnings do not)."""
    report = render_report(workspace, services=services, versions=versions,
                           instance_versions=instance_versions, instances=instances,
                           limits=limits)
    return report.problems(group=group)


def resolve_instance_key(workspace: Workspace, text: str) -> str:
    """``CUSTOMER/INSTANCE`` as is; a bare ``CUSTOMER`` when it has exactly one instance."""
    if "/" in text:
        if workspace.fleet.get(text) is None:
            raise InstanceNotFound(f"no instance '{text}'")
        return text
    keys = [inst.key for inst in workspace.fleet if inst.customer == text]
    if not keys:
        raise InstanceNotFound(f"no customer '{text}'")
    if len(keys) > 1:
        raise InstanceNotFound(f"customer '{text}' has {len(keys)} instances",
                               hint="name one: " + ", ".join(keys))
    return keys[0]


def render_instance(workspace: Workspace, instance_key: str, service: str, *,
                    version: str | None = None, validate: bool = False,
                    limits: ConfigLimits | None = None,
                    renderer: Renderer | None = None) -> RenderedConfig:
    """The config ``instance_key`` (``CUSTOMER/INSTANCE`` or a one-instance ``CUSTOMER``)
    gets for ``service`` at ``version``.

    Raises :class:`~rollwave.errors.ValidationFailed` listing every problem when it cannot be
    rendered (or, with ``validate``, when it breaks its schema).
    """
    key = resolve_instance_key(workspace, instance_key)
    inst = workspace.fleet.get(key)
    assert inst is not None
    if service not in workspace.project.services:
        raise ConfigError(f"unknown service '{service}'", hint="known services: " +
                          ", ".join(sorted(workspace.project.services)))
    if service not in inst.services:
        raise ConfigError(f"{key} does not run {service}",
                          hint="it runs: " + ", ".join(inst.services))
    renderer = renderer or Renderer(workspace, limits)
    own_files = {doc.file for doc in workspace.documents.values()
                 if isinstance(doc.data, dict) and doc.data.get("id") == inst.customer}
    errors = [p for p in renderer.sources.problems if p.severity == "error" and (
        (p.file or "").startswith(f"config/{service}/") or p.file in own_files)]
    result = renderer.render(inst, service, version)
    issues = result if isinstance(result, list) else (
        renderer.validate(result) if validate else [])
    if errors or issues:
        raise ValidationFailed([*errors, *issues_to_problems(issues)],
                               what=f"config of {key} for {service}")
    assert not isinstance(result, list)
    return result

