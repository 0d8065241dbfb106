"""Templated config values: Jinja2's immutable sandbox, strict undefined names, bounded output.

A value that contains ``{{``, ``{%`` or ``{#`` is a template rendered per instance with the
instance's facts (``customer``, ``instance``, ``environment``, ``tier``, ``region``, ``tags``,
``labels``, ``target``, ``host``, ``port``, ``url``, ``service``, ``version``) and ``config``
(the instance's merged config, so a value may reuse another one).

A value that is exactly one ``{{ expression }}`` keeps the expression's type (number, list,
mapping, boolean); anything else renders to a string.

What is refused, each as a located problem rather than a hang:

- names that are not defined (``StrictUndefined``), template syntax errors;
- statements other than ``if`` (no loops, macros, ``set``, includes): values are expressions;
- attributes and methods outside a small allow-list (no ``format``, no private attributes), and
  the filters ``center``, ``indent``, ``format``, ``random``, ``wordwrap`` and friends;
- strings or lists over :attr:`ConfigLimits.max_value_chars` built with ``*``, ``+``,
  ``join``, ``replace``; huge powers; ``%`` string formatting;
- ``config`` references that loop (``a`` → ``b`` → ``a``) or chain deeper than
  :attr:`ConfigLimits.max_reference_depth`; templates reading secrets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rollwave.config.compile import valid_reference
from rollwave.config.model import (
    SECRET_MARKER,
    ConfigLimits,
    SecretRef,
    Template,
    display_path,
)
from rollwave.yamlio import JsonPath

_SAFE_FILTERS = (
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "filesizeformat", "first",
    "float", "groupby", "int", "items", "last", "length", "list", "lower", "map", "max", "min",
    "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort", "string", "sum",
    "title", "trim", "truncate", "unique", "upper", "urlencode", "wordcount",
)
_STR_METHODS = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "isalnum", "isalpha", "isdigit",
    "islower", "isspace", "isupper", "lower", "lstrip", "partition", "removeprefix",
    "removesuffix", "rfind", "rpartition", "rsplit", "rstrip", "split", "splitlines",
    "startswith", "strip", "swapcase", "title", "upper",
})
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_DICT_FACTS = frozenset({"labels", "target"})
_STATEMENT_NAMES = {"Assign": "set", "AssignBlock": "set", "CallBlock": "call",
                    "FilterBlock": "filter", "FromImport": "from", "ExprStmt": "do",
                    "Scope": "scope", "OverlayScope": "scope", "EvalContextModifier": "autoescape"}


class TemplateRenderError(Exception):
    """A template that cannot be rendered; located at the template that failed."""

    def __init__(self, message: str, template: Template | None = None,
                 path: JsonPath = (), *, depth: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.template = template
        self.path = path
        self.depth = depth
        self.root: TemplateRenderError | None = None


class _TooLargeError(SecurityError):
    """A template tried to build a value over the size limit."""


class ConfigSandbox(ImmutableSandboxedEnvironment):
    """The Jinja environment for config values (see the module docstring for what it refuses)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, limits: ConfigLimits) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.limits = limits
        self.globals = {"range": self.globals["range"]}
        self.filters = {name: FILTERS[name] for name in _SAFE_FILTERS}
        self.filters.update(join=self._join, replace=self._replace, tojson=self._tojson)

    def _cap(self, size: int, what: str) -> None:
        if size > self.limits.max_value_chars:
            raise _TooLargeError(f"{what} would be {size:,} long, over the "
                            f"{self.limits.max_value_chars:,} limit for one config value")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("'%' string formatting is not allowed; use ~ and filters")
        if operator == "**" and isinstance(right, int) and isinstance(left, int | float) and (
                abs(right) > 1024 or (isinstance(left, int) and left.bit_length() * right > 4096)):
            raise _TooLargeError(f"{left} ** {right} is too large")
        if operator == "*":
            seq, times = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                self._cap(len(seq) * max(times, 0), "a repeated string or list")
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(
                right, str | list | tuple):
            self._cap(len(left) + len(right), "a concatenation")
        return self.binop_table[operator](left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in _STR_METHODS
        if isinstance(obj, Mapping):
            return attr in _MAPPING_METHODS
        if isinstance(obj, Sequence):
            return attr in _SEQUENCE_METHODS
        return False

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is not on the allow-list; refuse it like any other method

    def _join(self, value: Iterable[Any], separator: str = "") -> str:
        parts: list[str] = []
        size = 0
        for item in value:
            text = str(item)
            size += len(text) + (len(separator) if parts else 0)
            self._cap(size, "a joined string")
            parts.append(text)
        return separator.join(parts)

    def _replace(self, value: Any, old: str, new: str, count: int | None = None) -> str:
        text = str(value)
        hits = text.count(old) if old else len(text) + 1
        if count is not None:
            hits = min(hits, max(count, 0))
        self._cap(len(text) + hits * (len(str(new)) - len(old)), "a replaced string")
        return text.replace(old, str(new), -1 if count is None else count)

    def _tojson(self, value: Any, indent: int | None = None) -> str:
        width = indent if isinstance(indent, int) and 0 <= indent <= 8 else None
        text = json.dumps(to_plain(value, self.limits), sort_keys=True, ensure_ascii=False,
                          indent=width)
        self._cap(len(text), "a JSON string")
        return text


Part = tuple[int, str, Any]
"""A fast-path piece: (0, text, _), (1, name, _), (2, name, key) for ``labels.key``, or
(3, name, fallback) for ``name | default(fallback)``."""


class _Compiled:
    """A template compiled once: a fast path for plain substitutions, else Jinja code."""

    __slots__ = ("expression", "names", "native", "parts", "template")

    def __init__(self, native: bool, names: frozenset[str],
                 parts: list[Part] | None, template: Any,
                 expression: Any) -> None:
        self.native = native
        self.names = names
        self.parts = parts
        self.template = template
        self.expression = expression


def _statement_check(ast: nodes.Template) -> str | None:
    for node in ast.find_all(nodes.Stmt):
        if not isinstance(node, nodes.Output | nodes.If):
            name = type(node).__name__
            tag = _STATEMENT_NAMES.get(name, name.lower())
            return (f"'{{% {tag} %}}' is not allowed in config values; use expressions, "
                    "filters and {% if %}")
    return None


def _fast_parts(ast: nodes.Template) -> list[Part] | None:
    if not ast.body:
        return []
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts: list[Part] = []
    for node in ast.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append((0, node.data, ""))
        elif isinstance(node, nodes.Name) and node.name != "config":
            parts.append((1, node.name, ""))
        elif (isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name)
              and node.node.name in _DICT_FACTS and not hasattr(dict, node.attr)):
            parts.append((2, node.node.name, node.attr))
        elif (isinstance(node, nodes.Filter) and node.name in ("default", "d")
              and isinstance(node.node, nodes.Name) and node.node.name != "config"
              and len(node.args) == 1 and isinstance(node.args[0], nodes.Const)
              and not node.kwargs and node.dyn_args is None and node.dyn_kwargs is None
              and type(node.args[0].value) in (str, int, float, bool)):
            parts.append((3, node.node.name, node.args[0].value))
        else:
            return None
    return parts


class TemplateEngine:
    """Compiles each distinct template source once and renders it for a context."""

    def __init__(self, limits: ConfigLimits) -> None:
        self.limits = limits
        self.env = ConfigSandbox(limits)
        self._compiled: dict[str, _Compiled | TemplateRenderError] = {}

    def compile(self, template: Template) -> _Compiled:
        """The compiled form of ``template``; raises TemplateRenderError for syntax errors."""
        found = self._compiled.get(template.source)
        if found is None:
            found = self._compile(template.source)
            self._compiled[template.source] = found
        if isinstance(found, TemplateRenderError):
            raise TemplateRenderError(found.message, template)
        return found

    def _compile(self, source: str) -> _Compiled | TemplateRenderError:
        try:
            ast = self.env.parse(source)
            refused = _statement_check(ast)
            if refused:
                return TemplateRenderError(refused)
            names = frozenset(find_undeclared_variables(ast))
            parts = _fast_parts(ast)
            body = ast.body
            native = (source.startswith("{{") and source.endswith("}}") and len(body) == 1
                      and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1
                      and not isinstance(body[0].nodes[0], nodes.TemplateData))
            if native:
                expression = None if parts else self.env.compile_expression(
                    source[2:-2], undefined_to_none=False)
                return _Compiled(True, names, parts, None, expression)
            template = None if parts is not None else self.env.from_string(source)
            return _Compiled(False, names, parts, template, None)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (template line {line})" if line and "\n" in source.strip() else ""
            return TemplateRenderError(f"template syntax error: {exc.message}{where}")
        except Exception as exc:  # e.g. a constant Python cannot write back (1e400)
            return TemplateRenderError(f"template cannot be compiled: {type(exc).__name__}")

    def render(self, template: Template, context: Mapping[str, Any]) -> Any:
        """Render ``template``; raises TemplateRenderError with a user-facing message."""
        compiled = self.compile(template)
        try:
            if compiled.parts is not None:
                value = _render_parts(compiled, lambda name: context.get(name, _FALLBACK))
                if value is not _FALLBACK:
                    return value
                if compiled.native and compiled.expression is None:
                    compiled.expression = self.env.compile_expression(
                        template.source[2:-2], undefined_to_none=False)
                elif not compiled.native and compiled.template is None:
                    compiled.template = self.env.from_string(template.source)
            if compiled.native:
                result = compiled.expression(**context)
                if isinstance(result, Undefined):
                    str(result)  # raises the UndefinedError that names what is missing
                return to_plain(result, self.limits)
            return self._text(compiled, context)
        except TemplateRenderError as exc:
            if exc.template is None:
                exc.template = template
            raise
        except _TooLargeError as exc:
            raise TemplateRenderError(str(exc), template) from None
        except TemplateError as exc:
            raise TemplateRenderError(_jinja_message(exc), template) from None
        except RecursionError:
            raise TemplateRenderError("template nesting too deep", template) from None
        except Exception as exc:  # user code: any failure is a located problem, not a crash
            raise TemplateRenderError(f"template error: {type(exc).__name__}: {exc}",
                                      template) from None

    def _text(self, compiled: _Compiled, context: Mapping[str, Any]) -> str:
        pieces: list[str] = []
        size = 0
        for chunk in compiled.template.generate(context):
            size += len(chunk)
            if size > self.limits.max_value_chars:
                raise _TooLargeError(f"template output is over the {self.limits.max_value_chars:,} "
                                "character limit for one config value")
            pieces.append(chunk)
        return "".join(pieces)


_FALLBACK: Any = object()


def _render_parts(compiled: _Compiled, lookup: Callable[[str], Any]) -> Any:
    parts = compiled.parts or []
    values: list[Any] = []
    for kind, name, attr in parts:
        if kind == 0:
            values.append(name)
            continue
        value = lookup(name)
        if kind == 2:
            value = value.get(attr, _FALLBACK) if type(value) is dict else _FALLBACK
        elif kind == 3 and value is _FALLBACK:
            value = attr  # ``name | default(attr)`` with ``name`` undefined
        if value is _FALLBACK:
            return _FALLBACK  # let Jinja produce the exact error message
        values.append(value)
    if compiled.native:
        value = values[0]
        return value if type(value) in (str, int, bool) or value is None else _FALLBACK
    return "".join(v if type(v) is str else str(v) for v in values)


def _jinja_message(exc: TemplateError) -> str:
    message = exc.message or type(exc).__name__
    if type(exc).__name__ == "UndefinedError":
        return f"undefined: {message}"
    return message


def to_plain(value: Any, limits: ConfigLimits, _budget: list[int] | None = None) -> Any:
    """JSON-compatible data from a template result (views resolved, tuples to lists)."""
    budget = _budget if _budget is not None else [limits.max_value_chars]
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLargeError("template result is too large for one config value")
    if isinstance(value, Undefined):
        str(value)  # raises UndefinedError
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TemplateRenderError(f"template produced {value}, which JSON cannot hold")
        return value
    if isinstance(value, str):
        budget[0] -= len(value)
        if budget[0] < 0:
            raise _TooLargeError("template result is too large for one config value")
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            if not isinstance(key, str):
                raise TemplateRenderError(
                    f"template produced a mapping with a non-text key {key!r}")
            out[key] = to_plain(value[key], limits, budget)
        return out
    if isinstance(value, list | tuple | range | ConfigList):
        return [to_plain(item, limits, budget) for item in value]
    raise TemplateRenderError(f"template produced a {type(value).__name__}; config values are "
                          "text, numbers, booleans, null, lists and mappings")


class ConfigMapping(Mapping[str, Any]):
    """``config`` (and its sub-mappings) as templates see it: templated values render lazily."""

    __slots__ = ("_node", "_path", "_session")

    def __init__(self, session: Session, node: dict[str, Any], path: JsonPath) -> None:
        self._session = session
        self._node = node
        self._path = path

    def __getitem__(self, key: str) -> Any:
        return self._session.lookup(self._node[key], (*self._path, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._node)

    def __len__(self) -> int:
        return len(self._node)

    def __str__(self) -> str:
        return str(to_plain(self, self._session.limits))


class ConfigList(Sequence[Any]):
    """A list inside ``config`` as templates see it."""

    __slots__ = ("_node", "_path", "_session")

    def __init__(self, session: Session, node: list[Any], path: JsonPath) -> None:
        self._session = session
        self._node = node
        self._path = path

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._node)))]
        return self._session.lookup(self._node[index], (*self._path, index))

    def __len__(self) -> int:
        return len(self._node)

    def __str__(self) -> str:
        return str(to_plain(self, self._session.limits))


class Session:
    """Renders the markers of one merged tree for one instance (memo + loop detection)."""

    def __init__(self, engine: TemplateEngine, tree: dict[str, Any],
                 facts: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        self.limits = engine.limits
        self.tree = tree
        self._facts = facts
        self._extra = extra or {}
        self.failures: list[TemplateRenderError] = []
        self._state: tuple[dict[JsonPath, Any], dict[JsonPath, TemplateRenderError],
                           list[JsonPath]] | None = None
        self._merged: dict[str, Any] | None = None
        self._with_config: dict[str, Any] | None = None

    @property
    def facts(self) -> Mapping[str, Any]:
        """The instance's facts plus ``service``/``version`` (built on first use)."""
        if self._merged is None:
            self._merged = {**self._facts, **self._extra} if self._extra else dict(self._facts)
        return self._merged

    def _lookup_fact(self, name: str) -> Any:
        found = self._extra.get(name, _FALLBACK)
        return self._facts.get(name, _FALLBACK) if found is _FALLBACK else found

    def lookup(self, node: Any, path: JsonPath) -> Any:
        """A config value as a template reads it (``config.db.host``)."""
        kind = type(node)
        if kind is Template:
            return self._render(node, path)
        if kind is SecretRef:
            raise TemplateRenderError(f"config.{display_path(path)} is a secret; templates cannot "
                                  "read secret values (they are resolved only at deploy time)")
        if kind is dict:
            return ConfigMapping(self, node, path)
        if kind is list:
            return ConfigList(self, node, path)
        return node

    def _context(self, template: Template) -> Mapping[str, Any]:
        if "config" not in self.engine.compile(template).names:
            return self.facts
        if self._with_config is None:
            self._with_config = {**self.facts, "config": ConfigMapping(self, self.tree, ())}
        return self._with_config

    def _render(self, template: Template, path: JsonPath) -> Any:
        if self._state is None:
            self._state = ({}, {}, [])
        memo, failed, stack = self._state
        if path in memo:
            return memo[path]
        if path in failed:
            raise failed[path]
        if path in stack:
            chain = [*stack[stack.index(path):], path]
            raise TemplateRenderError("template recursion: " + " → ".join(
                display_path(p) for p in chain), template, path)
        if len(stack) >= self.limits.max_reference_depth:
            steps = " → ".join(display_path(p) for p in [*stack, path])
            raise TemplateRenderError(f"templates refer to each other more than "
                                      f"{self.limits.max_reference_depth} levels deep: {steps}",
                                      template, path, depth=True)
        stack.append(path)
        try:
            value = self.engine.render(template, self._context(template))
        except TemplateRenderError as exc:
            if exc.depth:
                raise  # depends on where the chain started: not this template's own failure
            root = exc.root or exc
            if not root.path:
                root.path = path
            own = root
            if root.path != path:  # a value this template reads cannot be rendered
                own = TemplateRenderError(
                    f"uses config.{display_path(root.path)}, which cannot be rendered: "
                    f"{root.message}", template, path)
                own.root = root
            failed[path] = own
            raise own from None
        finally:
            stack.pop()
        memo[path] = value
        return value

    def final(self, node: Any, path: JsonPath) -> Any:
        """The rendered value of a marker leaf; failures are collected, the value is None."""
        try:
            if type(node) is Template:
                compiled = self.engine.compile(node)
                if compiled.parts is not None and "config" not in compiled.names:
                    value = _render_parts(compiled, self._lookup_fact)  # the common case
                    if value is not _FALLBACK:
                        return value
                return self._render(node, path)
            return self._secret(node, path)
        except TemplateRenderError as exc:
            if exc.depth:
                template = node if type(node) is Template else node.reference
                exc = TemplateRenderError(exc.message, template if isinstance(
                    template, Template) else exc.template, path)
            self.failures.append(exc)
            return None

    def close(self) -> None:
        """Drop what ties ``config`` views back to this session (a reference cycle)."""
        self._with_config = None
        self._state = None

    def _secret(self, node: SecretRef, path: JsonPath) -> dict[str, str]:
        if node.final is not None:
            return node.final
        assert isinstance(node.reference, Template)
        ref = self._render(node.reference, (*path, SECRET_MARKER))
        if not isinstance(ref, str) or not valid_reference(ref):
            raise TemplateRenderError(f"secret reference renders to {ref!r}, which is not "
                                  "kind:reference", node.reference, path)
        return {SECRET_MARKER: ref}


Trie = dict[Any, Any]
"""Paths of the markers in a tree: nested dicts keyed by key or index; ``True`` at a marker."""


def find_markers(node: Any) -> tuple[Trie | bool | None, bool]:
    """``(trie, dynamic)``: where the markers are, and whether any depends on the instance."""
    kind = type(node)
    if kind is Template:
        return True, True
    if kind is SecretRef:
        return True, node.final is None
    if kind is dict:
        items: Iterable[tuple[Any, Any]] = node.items()
    elif kind is list:
        items = enumerate(node)
    else:
        return None, False
    trie: Trie = {}
    dynamic = False
    for key, value in items:
        sub, dyn = find_markers(value)
        if sub is not None:
            trie[key] = sub
            dynamic = dynamic or dyn
    return (trie or None), dynamic


def finalize(node: Any, trie: Trie | bool, session: Session | None, path: JsonPath = ()) -> Any:
    """A copy of ``node`` with the markers in ``trie`` rendered (other subtrees are shared).

    ``session`` may be None when every marker is a fixed secret reference.
    """
    if trie is True:
        if session is None:
            assert type(node) is SecretRef
            assert node.final is not None
            return node.final
        return session.final(node, path)
    assert isinstance(trie, dict)
    out: Any = node.copy()
    for key, sub in trie.items():
        out[key] = finalize(node[key], sub, session, (*path, key))
    return out
