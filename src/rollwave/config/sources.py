"""Read a workspace's configuration layers and schemas (the I/O edge of rollwave.config).

Layout (documented in docs/configuration.md)::

    config/<service>/defaults.yaml               values: + merge: (list merge modes by path)
    config/<service>/environments/<env>.yaml     values:
    config/<service>/overlays/<name>.yaml        match: <tag expression>, priority: 0, values:
    config/<service>/schema.json|.yaml           JSON Schema (or Service.config_schema)
    config/<service>/schemas/<version>.json|.yaml  schema from that service version on
    customers/<id>.yaml                          config: {<service>: ...} and per instance

Every file goes through :func:`rollwave.yamlio.load_yaml` (or a bounded JSON reader), every
problem is located. :func:`load_sources` caches the result on the workspace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollwave.config.compile import check_keyed_items, compile_modes, compile_values
from rollwave.config.merge import walk_declared_lists
from rollwave.config.model import (
    DEFAULT_LIMITS,
    ConfigLimits,
    Layer,
    LayerKind,
    ListOp,
    MergeMode,
    ModeTree,
    SecretRef,
    Template,
)
from rollwave.config.schema import CompiledSchema, SchemaSource, check_schema
from rollwave.config.templating import TemplateEngine, TemplateRenderError
from rollwave.core import tagexpr
from rollwave.errors import Problem, ValidationFailed
from rollwave.workspace.loader import PROJECT_FILE, Workspace, pydantic_problems
from rollwave.yamlio import JsonPath, YamlDocument, load_yaml

CONFIG_DIR = "config"
_CACHE = "rollwave.config.sources"
_YAML = (".yaml", ".yml")
_SCHEMA_EXT = (".json", ".yaml", ".yml")
_FILE_KEYS = {
    "defaults": ("description", "values", "merge"),
    "environment": ("description", "values"),
    "overlay": ("description", "match", "priority", "values"),
}
BUILTIN_NAMES = frozenset({"customer", "instance", "environment", "tier", "region", "tag"})


@dataclass(eq=False)
class ServiceSources:
    """Every layer and schema of one service."""

    name: str
    modes: ModeTree = field(default_factory=dict)
    defaults: Layer | None = None
    environments: dict[str, Layer] = field(default_factory=dict)
    overlays: tuple[Layer, ...] = ()
    schema: SchemaSource | None = None
    schemas: dict[str, SchemaSource] = field(default_factory=dict)


@dataclass(eq=False)
class ConfigSources:
    """The compiled configuration sources of a workspace."""

    workspace: Workspace
    limits: ConfigLimits
    engine: TemplateEngine
    services: dict[str, ServiceSources] = field(default_factory=dict)
    customer_layers: dict[tuple[str, str], Layer] = field(default_factory=dict)
    instance_layers: dict[tuple[str, str], Layer] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    _compiled: dict[int, CompiledSchema] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def compiled(self, source: SchemaSource) -> CompiledSchema:
        """The validator of ``source``, compiled once."""
        found = self._compiled.get(id(source))
        if found is None:
            found = CompiledSchema(source)
            self._compiled[id(source)] = found
        return found

    def layers(self) -> Iterator[Layer]:
        """Every compiled layer, for checks that look at all of them."""
        for svc in self.services.values():
            if svc.defaults is not None:
                yield svc.defaults
            yield from svc.environments.values()
            yield from svc.overlays
        yield from self.customer_layers.values()
        yield from self.instance_layers.values()


def load_sources(workspace: Workspace, limits: ConfigLimits | None = None) -> ConfigSources:
    """Read and compile ``config/`` and the customers' config maps (cached per workspace)."""
    limits = limits or DEFAULT_LIMITS
    cache: dict[ConfigLimits, ConfigSources] = workspace.extras.setdefault(_CACHE, {})
    found = cache.get(limits)
    if found is None:
        found = _Reader(workspace, limits).read()
        cache[limits] = found
    return found


def check_config_sources(workspace: Workspace) -> list[Problem]:
    """The workspace loader's extra check: problems in config files (not rendered values)."""
    return list(load_sources(workspace).problems)


class _Reader:
    def __init__(self, workspace: Workspace, limits: ConfigLimits) -> None:
        self.ws = workspace
        self.root = workspace.root
        self.limits = limits
        self.out = ConfigSources(workspace=workspace, limits=limits,
                                 engine=TemplateEngine(limits))
        self.problems = self.out.problems

    def read(self) -> ConfigSources:
        project = self.ws.project
        base = self.root / CONFIG_DIR
        if base.is_dir():
            for entry in sorted(base.iterdir()):
                if entry.is_dir() and entry.name not in project.services:
                    self.problems.append(Problem(
                        message=f"config for unknown service '{entry.name}'",
                        file=f"{CONFIG_DIR}/{entry.name}/", code="config.invalid",
                        hint="known services: " + ", ".join(sorted(project.services))))
        for name, service in project.services.items():
            self.out.services[name] = self.service(name, service.config_schema)
        self.customers()
        self.check_layers()
        return self.out

    # -- files ----------------------------------------------------------------------------

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def yaml(self, path: Path) -> YamlDocument | None:
        try:
            return load_yaml(path, display=self.rel(path), max_bytes=self.limits.max_file_bytes,
                             max_nodes=self.limits.max_nodes, max_depth=self.limits.max_depth)
        except ValidationFailed as exc:
            self.problems.extend(exc.problems)
            return None

    def one_of(self, folder: Path, stem: str, exts: Iterable[str]) -> Path | None:
        found = [folder / f"{stem}{ext}" for ext in exts if (folder / f"{stem}{ext}").is_file()]
        if len(found) > 1:
            self.problems.append(Problem(
                message=f"both {' and '.join(self.rel(p) for p in found)} exist",
                file=self.rel(found[1]), code="config.invalid", hint="keep one of them"))
        return found[0] if found else None

    def layer_file(self, path: Path, kind: LayerKind,
                   name: str) -> tuple[Layer | None, YamlDocument | None]:
        doc = self.yaml(path)
        if doc is None:
            return None, None
        data = doc.data if doc.data is not None else {}
        if not isinstance(data, dict):
            self.problems.append(Problem(message="a config layer file holds a mapping with "
                                         "'values:'", file=doc.file, line=1,
                                         hint="e.g. values: {log_level: info}",
                                         code="config.invalid"))
            return None, doc
        allowed = _FILE_KEYS[kind]
        for key in data:
            if key not in allowed:
                self.problems.append(doc.problem((key,), f"unknown key '{key}' in this {kind} "
                                                 "file", hint="allowed: " + ", ".join(allowed),
                                                 code="config.invalid"))
        tree, has_ops = compile_values(data.get("values"), file=doc.file, doc=doc,
                                       base=("values",), problems=self.problems)
        layer = Layer(kind=kind, name=name, file=doc.file, tree=tree, doc=doc,
                      base=("values",), has_ops=has_ops)
        return layer, doc

    # -- services ---------------------------------------------------------------------------

    def service(self, name: str, schema_ref: str | None) -> ServiceSources:
        svc = ServiceSources(name=name)
        folder = self.root / CONFIG_DIR / name
        if folder.is_dir():
            self.unknown_entries(folder)
        defaults_path = self.one_of(folder, "defaults", _YAML) if folder.is_dir() else None
        if defaults_path is not None:
            layer, doc = self.layer_file(defaults_path, "defaults", "defaults")
            if layer is not None and doc is not None and isinstance(doc.data, dict):
                svc.modes = compile_modes(doc.data.get("merge"), doc, ("merge",), self.problems)
                svc.defaults = layer
        envs = self.root / CONFIG_DIR / name / "environments"
        for path in self.yaml_files(envs):
            if path.stem not in self.ws.project.environments:
                self.problems.append(Problem(
                    message=f"environment file for unknown environment '{path.stem}'",
                    file=self.rel(path), code="config.invalid",
                    hint="known environments: " + ", ".join(sorted(self.ws.project.environments))))
                continue
            layer, _ = self.layer_file(path, "environment", path.stem)
            if layer is not None:
                svc.environments[path.stem] = layer
        overlays = [o for o in (self.overlay(p) for p in self.yaml_files(folder / "overlays"))
                    if o is not None]
        svc.overlays = tuple(sorted(overlays, key=lambda o: (o.priority, o.name)))
        svc.schema, svc.schemas = self.schemas(folder, schema_ref)
        return svc

    def unknown_entries(self, folder: Path) -> None:
        known = {"defaults.yaml", "defaults.yml", "schema.json", "schema.yaml", "schema.yml",
                 "environments", "overlays", "schemas"}
        for entry in sorted(folder.iterdir()):
            if entry.name not in known and not entry.name.startswith("."):
                self.problems.append(Problem(
                    message=f"'{entry.name}' is not part of a service's config layout",
                    file=self.rel(entry), code="config.invalid", severity="warning",
                    hint="expected defaults.yaml, environments/, overlays/, schema.json or "
                         "schemas/ (see docs/configuration.md)"))

    def yaml_files(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _YAML)

    def overlay(self, path: Path) -> Layer | None:
        layer, doc = self.layer_file(path, "overlay", path.stem)
        if layer is None or doc is None or not isinstance(doc.data, dict):
            return None
        match = doc.data.get("match")
        if not isinstance(match, str) or not match.strip():
            self.problems.append(doc.problem(("match",), "an overlay needs 'match:' with a tag "
                                             "expression", hint="e.g. match: tier == enterprise",
                                             code="config.invalid"))
            return None
        try:
            expr = tagexpr.parse(match)
        except tagexpr.TagExprError as exc:
            self.problems.append(doc.problem(("match",), f"bad tag expression: {exc}",
                                             code="config.invalid"))
            return None
        priority = doc.data.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            self.problems.append(doc.problem(("priority",), "priority must be a whole number",
                                             hint="higher priorities apply later and win",
                                             code="config.invalid"))
            return None
        return Layer(kind="overlay", name=path.stem, file=doc.file, tree=layer.tree, doc=doc,
                     base=("values",), has_ops=layer.has_ops, priority=priority, match=match,
                     expr=expr)

    def schemas(self, folder: Path, schema_ref: str | None,
                ) -> tuple[SchemaSource | None, dict[str, SchemaSource]]:
        unversioned = None
        if schema_ref:
            path = self.root / schema_ref
            if path.is_file():
                unversioned = self.schema_file(path, None)
            else:
                self.problems.append(Problem(
                    message=f"config_schema '{schema_ref}' does not exist",
                    file="rollwave.yaml", code="config.invalid",
                    hint="the path is relative to the workspace root"))
        elif folder.is_dir():
            path_found = self.one_of(folder, "schema", _SCHEMA_EXT)
            unversioned = self.schema_file(path_found, None) if path_found else None
        versioned: dict[str, SchemaSource] = {}
        schemas_dir = folder / "schemas"
        if schemas_dir.is_dir():
            for path in sorted(schemas_dir.iterdir()):
                if path.is_file() and path.suffix in _SCHEMA_EXT:
                    version = path.name[: -len(path.suffix)]
                    if version in versioned:
                        self.problems.append(Problem(
                            message=f"two schemas for version {version}", file=self.rel(path),
                            code="config.invalid", hint="keep one file per version"))
                        continue
                    source = self.schema_file(path, version)
                    if source is not None:
                        versioned[version] = source
        return unversioned, versioned

    def schema_file(self, path: Path, version: str | None) -> SchemaSource | None:
        display = self.rel(path)
        if path.suffix in _YAML:
            doc = self.yaml(path)
            if doc is None:
                return None
            schema = doc.data
        else:
            schema = self.json_file(path, display)
            if schema is _BAD:
                return None
        reason = check_schema(schema)
        if reason:
            self.problems.append(Problem(message=reason, file=display, code="config.schema",
                                         hint="see https://json-schema.org/understanding-json-"
                                              "schema"))
            return None
        return SchemaSource(file=display, schema=schema, version=version)

    def json_file(self, path: Path, display: str) -> Any:
        def bad(message: str, line: int | None = None) -> Any:
            self.problems.append(Problem(message=message, file=display, line=line,
                                         code="config.schema"))
            return _BAD

        size = path.stat().st_size
        if size > self.limits.max_file_bytes:
            return bad(f"file is {size:,} bytes, over the {self.limits.max_file_bytes:,} byte "
                       "limit")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            return bad(f"file is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                       raw[: exc.start].count(b"\n") + 1)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            return bad(f"JSON syntax error: {exc.msg}", exc.lineno)
        except RecursionError:
            return bad("JSON nesting too deep")

    # -- customers and instances --------------------------------------------------------------

    def customers(self) -> None:
        docs = {doc.data.get("id"): doc for key, doc in self.ws.documents.items()
                if key.startswith("customers/") and isinstance(doc.data, dict)}
        services = self.ws.project.services
        for cid, customer in self.ws.fleet.customers.items():
            doc = docs.get(cid)
            for svc, values in customer.config.items():
                if svc in services:
                    self.out.customer_layers[(cid, svc)] = self.inline_layer(
                        "customer", cid, doc, base=("config", svc), values=values)
            for name, inst in customer.instances.items():
                key = f"{cid}/{name}"
                for svc, values in inst.config.items():
                    base: JsonPath = ("instances", name, "config", svc)
                    if svc not in services:
                        self.problems.append(_located(doc, base, f"config for unknown service "
                                                      f"'{svc}'", "known services: " +
                                                      ", ".join(sorted(services))))
                        continue
                    self.out.instance_layers[(key, svc)] = self.inline_layer(
                        "instance", key, doc, base=base, values=values)

    def inline_layer(self, kind: LayerKind, name: str, doc: YamlDocument | None, *,
                     base: JsonPath, values: Any) -> Layer:
        file = doc.file if doc is not None else f"customers/{name.split('/', 1)[0]}.yaml"
        tree, has_ops = compile_values(values, file=file, doc=doc, base=base,
                                       problems=self.problems)
        return Layer(kind=kind, name=name, file=file, tree=tree, doc=doc, base=base,
                     has_ops=has_ops)

    # -- cross checks ---------------------------------------------------------------------------

    def check_layers(self) -> None:
        known = set(BUILTIN_NAMES)
        for inst in self.ws.fleet:
            known |= set(inst.tags) | set(inst.facts.attributes)
        kinds = _secret_kinds()
        self.check_secret_settings()
        for svc in self.out.services.values():
            for overlay in svc.overlays:
                assert overlay.expr is not None
                assert overlay.doc is not None
                for name in sorted(tagexpr.names(overlay.expr) - known):
                    self.problems.append(overlay.doc.problem(
                        ("match",), f"overlay '{overlay.name}' tests '{name}', which no "
                        "instance has as a tag or attribute", code="config.unknown_tag",
                        hint="check the spelling; the overlay applies to no instance",
                        severity="warning"))
        for (_, service), layer in [*self.out.customer_layers.items(),
                                    *self.out.instance_layers.items()]:
            self.check_layer(layer, self.out.services[service].modes, kinds)
        for svc in self.out.services.values():
            for layer in [*([svc.defaults] if svc.defaults else []),
                          *svc.environments.values(), *svc.overlays]:
                self.check_layer(layer, svc.modes, kinds)

    def check_secret_settings(self) -> None:
        """``secrets:`` in rollwave.yaml: known kinds, valid options for each."""
        settings = self.ws.project.secrets
        doc = self.ws.documents.get(PROJECT_FILE)
        if not settings or doc is None:
            return
        from rollwave.adapters.secrets import registry

        for kind, options in settings.items():
            if kind not in registry.kinds():
                self.problems.append(doc.problem(("secrets", kind), f"unknown secret kind "
                                                 f"'{kind}'", hint="known kinds: " +
                                                 ", ".join(registry.kinds()),
                                                 code="config.invalid"))
                continue
            try:
                registry.options_model(kind).model_validate(options or {})
            except ValidationError as exc:
                self.problems.extend(pydantic_problems(doc, exc, base=("secrets", kind)))

    def check_layer(self, layer: Layer, modes: ModeTree, kinds: set[str] | None) -> None:
        def report(path: JsonPath, message: str, hint: str | None = None) -> None:
            self.problems.append(_located(layer.doc, (*layer.base, *path), message, hint,
                                          file=layer.file))

        def keyed(items: list[Any], mode: MergeMode, path: JsonPath) -> None:
            check_keyed_items(items, mode, lambda i: (*path, i), report)

        walk_declared_lists(layer.tree, modes, (), keyed)
        for path, node in _markers(layer.tree, ()):
            template = node.reference if isinstance(node, SecretRef) else node
            if isinstance(template, Template):
                try:
                    self.out.engine.compile(template)
                except TemplateRenderError as exc:
                    report(path, exc.message, "see docs/configuration.md (templates)")
            elif isinstance(node, SecretRef) and kinds is not None:
                kind = str(node.reference).split(":", 1)[0]
                if kind not in kinds:
                    report(path, f"unknown secret kind '{kind}'",
                           "known kinds: " + ", ".join(sorted(kinds)))


_BAD: Any = object()


def _located(doc: YamlDocument | None, path: JsonPath, message: str, hint: str | None = None,
             file: str | None = None) -> Problem:
    if doc is not None:
        return doc.problem(path, message, hint, code="config.invalid")
    return Problem(message=message, file=file, hint=hint, code="config.invalid")


def _markers(node: Any, path: JsonPath) -> Iterator[tuple[JsonPath, Any]]:
    kind = type(node)
    if kind is Template or kind is SecretRef:
        yield path, node
    elif kind is dict:
        for key, value in node.items():
            yield from _markers(value, (*path, key))
    elif kind is list:
        for index, value in enumerate(node):
            yield from _markers(value, (*path, index))
    elif kind is ListOp:
        for index, value in enumerate(node.items):
            yield from _markers(value, (*path, "$items", index))


def _secret_kinds() -> set[str] | None:
    """Secret kinds the adapters provide (imported lazily: adapters sit below the core)."""
    try:
        from rollwave.adapters.secrets import registry
    except ImportError:  # pragma: no cover - the adapters ship with rollwave
        return None
    return set(registry.kinds())
