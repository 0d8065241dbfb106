"""A compiled subset of JSON Logic with flagd's custom operations.

Used for flagd targeting that does not map onto native rules (so an imported flag keeps
flagd's exact meaning). Expressions are compiled once into closures; evaluation is pure and
bounded by the expression's size. ``$flagd.flagKey`` resolves to the flag key given at compile
time; ``$flagd.timestamp`` is read from the context's ``$flagd`` mapping when present (the
engine never reads the clock).

Supported: ``var``, ``missing``, ``missing_some``, ``if``/``?:``, ``==``, ``===``, ``!=``,
``!==``, ``!``, ``!!``, ``and``, ``or``, ``<``, ``<=``, ``>``, ``>=`` (with the three-argument
"between" forms), ``in``, ``cat``, ``substr``, ``+``, ``-``, ``*``, ``/``, ``%``, ``min``,
``max``, ``merge``, and flagd's ``starts_with``, ``ends_with``, ``sem_ver`` and
``fractional``. Anything else is refused at compile time with :class:`FlagDefinitionError`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from rollwave.flags.bucketing import flagd_bucket
from rollwave.flags.errors import FlagDefinitionError

Expr = Callable[[Mapping[str, Any]], Any]
MAX_NODES = 10_000

_SEMVER_OPS = {"=", "!=", "<", "<=", ">", ">=", "^", "~"}


def truthy(value: Any) -> bool:
    """JSON Logic truthiness: empty arrays are false, the string "0" is true."""
    if isinstance(value, list):
        return len(value) > 0
    return bool(value)


def compile_expression(expression: Any, flag_key: str = "") -> Expr:
    """Compile a JSON Logic expression into ``context -> value``."""
    counter = [0]
    return _compile(expression, flag_key, counter)


def compile_condition(expression: Any, flag_key: str = "") -> Callable[[Mapping[str, Any]], bool]:
    """Compile a JSON Logic expression used as a condition (JSON Logic truthiness)."""
    expr = compile_expression(expression, flag_key)
    return lambda ctx: truthy(expr(ctx))


def _compile(node: Any, flag_key: str, counter: list[int]) -> Expr:  # noqa: PLR0911
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise FlagDefinitionError(f"JSON Logic expression has more than {MAX_NODES} nodes")
    if isinstance(node, list):
        items = [_compile(item, flag_key, counter) for item in node]
        return lambda ctx: [item(ctx) for item in items]
    if not isinstance(node, dict):
        return lambda ctx: node
    if len(node) != 1:
        raise FlagDefinitionError(f"a JSON Logic operation has exactly one key, got {node!r}")
    ((op, raw_args),) = node.items()
    if op == "var":
        return _var(raw_args, flag_key, counter)
    if op == "fractional":
        return _fractional(raw_args, flag_key, counter)
    args_list = raw_args if isinstance(raw_args, list) else [raw_args]
    args = [_compile(arg, flag_key, counter) for arg in args_list]
    if op in ("if", "?:"):
        return _if(args)
    if op == "and":
        return _and(args)
    if op == "or":
        return _or(args)
    if op in ("missing", "missing_some"):
        return _missing(op, args)
    simple = _SIMPLE.get(op)
    if simple is None:
        supported = sorted([*_SIMPLE, "var", "if", "and", "or", "fractional", "missing"])
        raise FlagDefinitionError(f"unsupported JSON Logic operation '{op}'",
                                  hint="supported: " + ", ".join(supported))
    return lambda ctx: simple(*[arg(ctx) for arg in args])


def _lookup(data: Any, path: str) -> Any:
    if path == "":
        return data
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return None
            current = current[part]
        elif isinstance(current, list):
            try:
                current = current[int(part)]
            except (ValueError, IndexError):
                return None
        else:
            return None
    return current


def _var(raw: Any, flag_key: str, counter: list[int]) -> Expr:
    args = raw if isinstance(raw, list) else [raw]
    if not args:
        return lambda ctx: ctx
    path_expr = _compile(args[0], flag_key, counter)
    default_expr = _compile(args[1], flag_key, counter) if len(args) > 1 else (lambda ctx: None)

    def var(ctx: Mapping[str, Any]) -> Any:
        path = path_expr(ctx)
        if path == "$flagd.flagKey":
            flagd = ctx.get("$flagd")
            return flagd.get("flagKey", flag_key) if isinstance(flagd, Mapping) else flag_key
        if isinstance(path, int | float) and not isinstance(path, bool):
            path = str(int(path))
        if not isinstance(path, str):
            return default_expr(ctx)
        value = ctx.get(path) if path in ctx else _lookup(ctx, path)
        return default_expr(ctx) if value is None else value
    return var


def _if(args: list[Expr]) -> Expr:
    def choose(ctx: Mapping[str, Any]) -> Any:
        index = 0
        while index + 1 < len(args):
            if truthy(args[index](ctx)):
                return args[index + 1](ctx)
            index += 2
        return args[index](ctx) if index < len(args) else None
    return choose


def _and(args: list[Expr]) -> Expr:
    def both(ctx: Mapping[str, Any]) -> Any:
        value: Any = None
        for arg in args:
            value = arg(ctx)
            if not truthy(value):
                return value
        return value
    return both


def _or(args: list[Expr]) -> Expr:
    def either(ctx: Mapping[str, Any]) -> Any:
        value: Any = None
        for arg in args:
            value = arg(ctx)
            if truthy(value):
                return value
        return value
    return either


def _fractional(raw: Any, flag_key: str, counter: list[int]) -> Expr:
    args = raw if isinstance(raw, list) else [raw]
    if not args:
        raise FlagDefinitionError("fractional needs at least one [variant, weight] bucket")
    explicit = not isinstance(args[0], list)
    by_expr = _compile(args[0], flag_key, counter) if explicit else None
    slices = args[1:] if explicit else args
    variants: list[Any] = []
    weights: list[int] = []
    for item in slices:
        if not isinstance(item, list) or not 1 <= len(item) <= 2:
            raise FlagDefinitionError(f"fractional bucket must be [variant, weight], got {item!r}")
        weight = item[1] if len(item) == 2 else 1
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise FlagDefinitionError(f"fractional weight must be an integer, got {weight!r}")
        variants.append(item[0])
        weights.append(max(0, weight))
    total = sum(weights)
    if total <= 0 or total > 2**31 - 1:
        raise FlagDefinitionError("fractional weights must add up to between 1 and 2^31-1")

    def fractional(ctx: Mapping[str, Any]) -> Any:
        if by_expr is not None:
            value = by_expr(ctx)
            if value is None:
                return None
            bucket = flagd_bucket(value, None, total)
        else:
            key = ctx.get("targetingKey")
            if not isinstance(key, str) or not key:
                return None
            flagd = ctx.get("$flagd")
            name = flagd.get("flagKey", flag_key) if isinstance(flagd, Mapping) else flag_key
            bucket = flagd_bucket(key, name, total)
        end = 0
        for variant, weight in zip(variants, weights, strict=True):
            end += weight
            if bucket < end:
                return variant
        return None
    return fractional


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _loose_eq(a: Any, b: Any) -> bool:
    if type(a) is type(b) or a is None or b is None:
        return bool(a == b)
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return na == nb
    return bool(a == b)


def _compare(test: Callable[[float, float], bool]) -> Callable[..., Any]:
    def compare(*values: Any) -> bool:
        if len(values) < 2:
            return False
        pairs = list(itertools.pairwise(values))
        for a, b in pairs:
            if isinstance(a, str) and isinstance(b, str):
                if not test(a, b):  # type: ignore[arg-type]
                    return False
                continue
            na, nb = _num(a), _num(b)
            if na is None or nb is None or not test(na, nb):
                return False
        return True
    return compare


def _in(needle: Any = None, haystack: Any = None) -> bool:
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, list):
        return needle in haystack
    return False


def _strings(test: Callable[[str, str], bool]) -> Callable[..., Any]:
    def compare(a: Any = None, b: Any = None, *rest: Any) -> Any:
        if rest or not isinstance(a, str) or not isinstance(b, str):
            return None
        return test(a, b)
    return compare


def _sem_ver(a: Any = None, op: Any = None, b: Any = None, *rest: Any) -> Any:
    from rollwave.flags.operators import semver_key
    if rest or op not in _SEMVER_OPS:
        return None
    va, vb = semver_key(_pad_version(a)), semver_key(_pad_version(b))
    if va is None or vb is None:
        return None
    if op == "^":
        return va[0] == vb[0]
    if op == "~":
        return va[:2] == vb[:2]
    return {"=": va == vb, "!=": va != vb, "<": va < vb, "<=": va <= vb,
            ">": va > vb, ">=": va >= vb}[op]


def _pad_version(value: Any) -> Any:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return value
    text = str(value)
    text = text[1:] if text[:1] in ("v", "V") else text
    numeric = text.split("-")[0].split("+")[0]
    dots = numeric.count(".")
    if dots < 2:
        text = numeric + ".0" * (2 - dots) + text[len(numeric):]
    return text


def _arith(fn: Callable[[float, float], float]) -> Callable[..., Any]:
    def apply(*values: Any) -> Any:
        numbers = [_num(v) for v in values]
        if not numbers or any(n is None for n in numbers):
            return None
        result = numbers[0]
        for n in numbers[1:]:
            try:
                result = fn(result, n)  # type: ignore[arg-type]
            except ZeroDivisionError:
                return None
        return result
    return apply


def _minus(*values: Any) -> Any:
    if len(values) == 1:
        n = _num(values[0])
        return None if n is None else -n
    return _arith(lambda a, b: a - b)(*values)


def _cat(*values: Any) -> str:
    from rollwave.flags.operators import text
    return "".join("" if v is None else text(v) for v in values)


def _substr(value: Any = "", start: Any = 0, length: Any = None) -> str:
    s = _cat(value)
    begin = int(_num(start) or 0)
    if length is None:
        return s[begin:]
    count = int(_num(length) or 0)
    return s[begin:begin + count] if count >= 0 else s[begin:count]


def _merge(*values: Any) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def _missing(op: str, args: list[Expr]) -> Expr:
    def missing(ctx: Mapping[str, Any]) -> Any:
        values = [arg(ctx) for arg in args]
        if op == "missing_some":
            need = int(_num(values[0]) or 0) if values else 0
            keys = values[1] if len(values) > 1 and isinstance(values[1], list) else []
        else:
            keys = _merge(*values)
        absent = [k for k in keys if _lookup(ctx, str(k)) is None]
        if op == "missing_some" and len(keys) - len(absent) >= need:
            return []
        return absent
    return missing


_SIMPLE: dict[str, Callable[..., Any]] = {
    "==": lambda a=None, b=None: _loose_eq(a, b),
    "===": lambda a=None, b=None: type(a) is type(b) and a == b,
    "!=": lambda a=None, b=None: not _loose_eq(a, b),
    "!==": lambda a=None, b=None: not (type(a) is type(b) and a == b),
    "!": lambda a=None, *rest: not truthy(a),
    "!!": lambda a=None, *rest: truthy(a),
    "<": _compare(lambda a, b: a < b),
    "<=": _compare(lambda a, b: a <= b),
    ">": _compare(lambda a, b: a > b),
    ">=": _compare(lambda a, b: a >= b),
    "in": _in,
    "cat": _cat,
    "substr": _substr,
    "+": lambda *v: _arith(lambda a, b: a + b)(*v) if v else 0,
    "-": _minus,
    "*": _arith(lambda a, b: a * b),
    "/": _arith(lambda a, b: a / b),
    "%": _arith(lambda a, b: a % b),
    "min": lambda *v: min((n for n in map(_num, v) if n is not None), default=None),
    "max": lambda *v: max((n for n in map(_num, v) if n is not None), default=None),
    "merge": _merge,
    "starts_with": _strings(lambda a, b: a.startswith(b)),
    "ends_with": _strings(lambda a, b: a.endswith(b)),
    "sem_ver": _sem_ver,
}
