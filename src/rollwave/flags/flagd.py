"""Import and export flagd flag definitions (https://flagd.dev/schema/v0/flags.json).

Import maps flagd targeting onto native rules where the meaning is identical, and keeps the
rest as JSON Logic conditions evaluated by :mod:`rollwave.flags.jsonlogic`:

- ``if`` chains (nested too) become rules in order, the ``else`` branch the fallthrough;
- ``==``/``!=`` with a string, ``in`` with a list of strings, ``starts_with``, ``ends_with``,
  numeric comparisons with a number, ``and`` and ``!`` become native conditions; anything
  else (``or``, ``sem_ver`` with flagd's lenient versions, ``cat``…) stays JSON Logic;
- ``fractional`` becomes a split bucketed with ``hash: flagd`` (flagd's CBOR + murmur3
  algorithm, so an imported flag buckets every context exactly like flagd); when flagd would
  return null (no targeting key) the default variant is served, as flagd does;
- ``$evaluators`` / ``$ref`` are inlined.

Export produces a flagd document for one environment and reports, as problems, what flagd
cannot express (regex, CIDR, dates, case-insensitive matching, prerequisites) and where
bucketing will differ (native ``rollwave`` hashing, percentage gates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rollwave.errors import Problem
from rollwave.flags.compiler import resolve
from rollwave.flags.errors import FlagDefinitionError
from rollwave.flags.jsonlogic import compile_expression
from rollwave.flags.model import Condition, Flag, FlagSet, Operator, Segment, Serve

SCHEMA = "https://flagd.dev/schema/v0/flags.json"
_MAX_REF_DEPTH = 32
_COMPARE = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


class _UnsupportedError(Exception):
    pass


def _inline_refs(node: Any, evaluators: Mapping[str, Any], depth: int = 0) -> Any:
    if depth > _MAX_REF_DEPTH:
        raise _UnsupportedError("$ref nesting too deep (a cycle?)")
    if isinstance(node, list):
        return [_inline_refs(item, evaluators, depth) for item in node]
    if isinstance(node, dict):
        if set(node) == {"$ref"}:
            name = node["$ref"]
            if name not in evaluators:
                raise _UnsupportedError(f"$ref to unknown evaluator '{name}'")
            return _inline_refs(evaluators[name], evaluators, depth + 1)
        return {k: _inline_refs(v, evaluators, depth) for k, v in node.items()}
    return node


def _flag_type(values: list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "boolean"
    if values and all(isinstance(v, str) for v in values):
        return "string"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "number"
    return "json"


def _var_name(node: Any) -> str | None:
    if isinstance(node, dict) and set(node) == {"var"}:
        ref = node["var"]
        if isinstance(ref, list) and len(ref) == 1:
            ref = ref[0]
        if isinstance(ref, str) and ref and not ref.startswith("$flagd"):
            return ref
    return None


def _conditions(node: Any) -> list[dict[str, Any]]:
    """Native conditions (ANDed) equivalent to a JSON Logic condition, else JSON Logic."""
    if isinstance(node, dict) and len(node) == 1:
        ((op, args),) = node.items()
        if op == "and" and isinstance(args, list) and args:
            return [c for arg in args for c in _conditions(arg)]
        native = _native(op, args)
        if native is not None:
            return [native]
    compile_expression(node)  # refuse unsupported operations now, with a clear error
    return [{"jsonlogic": node}]


def _native(op: str, args: Any) -> dict[str, Any] | None:  # noqa: PLR0911
    if op == "!":
        inner = args[0] if isinstance(args, list) and len(args) == 1 else args
        if isinstance(inner, dict) and len(inner) == 1:
            ((inner_op, inner_args),) = inner.items()
            native = _native(inner_op, inner_args)
            if native is not None:
                return {**native, "negate": not native.get("negate", False)}
        return None
    if not isinstance(args, list) or len(args) != 2:
        return None
    left, right = args
    attribute = _var_name(left)
    if op in ("==", "!=", "===", "!==") and attribute and isinstance(right, str):
        return {"attribute": attribute, "op": "equals", "value": right,
                "negate": op.startswith("!")}
    if op == "in" and attribute and isinstance(right, list) and right \
            and all(isinstance(v, str) for v in right):
        return {"attribute": attribute, "op": "in", "values": right}
    if op == "in" and isinstance(left, str) and _var_name(right):
        return {"attribute": _var_name(right), "op": "contains", "value": left}
    if op in ("starts_with", "ends_with") and attribute and isinstance(right, str):
        return {"attribute": attribute, "op": op, "value": right}
    if op in _COMPARE and attribute and isinstance(right, int | float) \
            and not isinstance(right, bool):
        return {"attribute": attribute, "op": _COMPARE[op], "value": right}
    return None


class _Importer:
    def __init__(self, key: str, default: str) -> None:
        self.key = key
        self.default = default
        self.rules: list[dict[str, Any]] = []

    def serve_of(self, node: Any) -> dict[str, Any] | None:
        """A Serve for a variant name or a fractional; None for a nested if."""
        if isinstance(node, str):
            return {"variant": node}
        if isinstance(node, bool):
            return {"variant": "true" if node else "false"}
        if isinstance(node, dict) and set(node) == {"fractional"}:
            return self.fractional(node["fractional"])
        if node is None:
            return {"variant": self.default}
        return None

    def fractional(self, args: Any) -> dict[str, Any]:
        args = args if isinstance(args, list) else [args]
        bucketing: dict[str, Any] = {"by": ["targetingKey"], "hash": "flagd"}
        if args and not isinstance(args[0], list):
            attribute = _var_name(args[0])
            if attribute is None:
                raise _UnsupportedError("fractional bucketBy must be a plain {\"var\": ...}")
            bucketing = {"by": [attribute], "hash": "flagd", "salt": ""}
            args = args[1:]
        split = []
        for item in args:
            if not isinstance(item, list) or not 1 <= len(item) <= 2 \
                    or not isinstance(item[0], str):
                raise _UnsupportedError(f"fractional bucket {item!r} is not [variant, weight]")
            weight = item[1] if len(item) == 2 else 1
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise _UnsupportedError(f"fractional weight {weight!r} is not an integer")
            split.append({"variant": item[0], "weight": max(0, weight)})
        return {"split": split, "bucketing": bucketing}

    def add(self, when: list[dict[str, Any]], serve: dict[str, Any]) -> None:
        if "split" in serve:  # flagd serves the default when the bucketing key is missing
            attribute = serve["bucketing"]["by"][0]
            self.rules.append({"id": f"rule-{len(self.rules)}", "when": [*when, {
                "attribute": attribute, "op": "exists", "negate": True}],
                "serve": {"variant": self.default}})
        self.rules.append({"id": f"rule-{len(self.rules)}", "when": when, "serve": serve})

    def walk(self, node: Any, when: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Add rules for ``node`` under ``when``; return the serve for what is left over."""
        serve = self.serve_of(node)
        if serve is not None:
            return serve
        if isinstance(node, dict) and len(node) == 1 and next(iter(node)) in ("if", "?:"):
            args = next(iter(node.values()))
            args = args if isinstance(args, list) else [args]
            index = 0
            while index + 1 < len(args):
                branch = [*when, *_conditions(args[index])]
                leftover = self.walk(args[index + 1], branch)
                if leftover is not None:
                    self.add(branch, leftover)
                index += 2
            tail = args[index] if index < len(args) else None
            return self.walk(tail, when)
        raise _UnsupportedError("targeting must be if/else chains of variant names and fractional")


def import_flagd(document: Mapping[str, Any]) -> tuple[FlagSet, list[Problem]]:
    """Convert a flagd flag definition document into a FlagSet, with problems per flag."""
    problems: list[Problem] = []
    evaluators = document.get("$evaluators") or {}
    flags: dict[str, Flag] = {}
    for key, raw in (document.get("flags") or {}).items():
        where = f"flags.{key}"
        try:
            flags[key] = _import_one(key, raw, evaluators, document.get("metadata") or {})
        except (_UnsupportedError, FlagDefinitionError, ValueError) as exc:
            message = exc.message if isinstance(exc, FlagDefinitionError) else str(exc)
            problems.append(Problem(message=f"flag '{key}': {message}", path=where,
                                    code="flag.import"))
    return FlagSet(flags=flags), problems


def _import_one(key: str, raw: Mapping[str, Any], evaluators: Mapping[str, Any],
                set_metadata: Mapping[str, Any]) -> Flag:
    variants = raw.get("variants") or {}
    if not isinstance(variants, dict) or not variants:
        raise _UnsupportedError("needs a non-empty 'variants' object")
    default = raw.get("defaultVariant")
    if default is None or default not in variants:
        raise _UnsupportedError(f"defaultVariant {default!r} is not one of its variants")
    importer = _Importer(key, str(default))
    targeting = _inline_refs(raw.get("targeting") or {}, evaluators)
    fallthrough: dict[str, Any] = {"variant": default}
    if targeting:
        leftover = importer.walk(targeting, [])
        fallthrough = leftover or fallthrough
        if "split" in fallthrough:
            importer.add([], fallthrough)
            fallthrough = {"variant": default}
    metadata = {**set_metadata, **(raw.get("metadata") or {})}
    return Flag.model_validate({
        "key": key, "type": _flag_type(list(variants.values())),
        "variants": [{"name": n, "value": v} for n, v in variants.items()],
        "enabled": raw.get("state", "ENABLED") == "ENABLED",
        "off_variant": default, "rules": importer.rules, "fallthrough": fallthrough,
        "metadata": {k: v for k, v in metadata.items() if isinstance(v, str | int | float | bool)},
    })


# -- export ---------------------------------------------------------------------------------------

def _logic_of(cond: Condition, problems: list[Problem], where: str) -> Any:
    if cond.segment is not None:
        logic: Any = {"$ref": cond.segment}
    elif cond.jsonlogic is not None:
        logic = cond.jsonlogic
    else:
        logic = _attribute_logic(cond, problems, where)
    return {"!": logic} if cond.negate else logic


def _attribute_logic(cond: Condition, problems: list[Problem], where: str) -> Any:
    var = {"var": cond.attribute}
    values = cond.operands()
    op = cond.op
    if cond.case_insensitive:
        problems.append(Problem(message="flagd has no case-insensitive matching; exported "
                                "case-sensitive", path=where, code="flag.export"))
    if op in (Operator.EQUALS, Operator.IN, Operator.NOT_EQUALS, Operator.NOT_IN):
        logic: Any = {"==": [var, values[0]]} if len(values) == 1 else {"in": [var, values]}
        return {"!": logic} if op in (Operator.NOT_EQUALS, Operator.NOT_IN) else logic
    if op in (Operator.CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH):
        def one(value: Any) -> Any:
            if op is Operator.CONTAINS:
                return {"in": [value, var]}
            return {op.value: [var, value]}
        return one(values[0]) if len(values) == 1 else {"or": [one(v) for v in values]}
    if op in (Operator.LT, Operator.LTE, Operator.GT, Operator.GTE):
        symbol = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op.value]
        return {symbol: [var, values[0]]}
    if op is not None and op.value.startswith("semver_"):
        symbol = {"eq": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[
            op.value.removeprefix("semver_")]
        return {"sem_ver": [var, symbol, values[0]]}
    if op is Operator.EXISTS:
        return {"!!": var}
    problems.append(Problem(message=f"flagd cannot express operator '{op}'; the condition "
                            "is exported as never true", path=where, code="flag.export"))
    return False


def _segment_logic(segment: Segment, problems: list[Problem]) -> Any:
    where = f"segments.{segment.key}"
    parts = [_logic_of(c, problems, where) for c in segment.when]
    logic: Any = {"and": parts} if len(parts) > 1 else (parts[0] if parts else False)
    key_var = {"var": segment.by}
    if segment.excluded:
        logic = {"and": [{"!": {"in": [key_var, segment.excluded]}}, logic]}
    if segment.included:
        logic = {"or": [{"in": [key_var, segment.included]}, logic]}
    return logic


def _serve_logic(flag: Flag, serve: Serve, problems: list[Problem], where: str) -> Any:
    if serve.variant is not None:
        return serve.variant
    spec = serve.bucketing or flag.bucketing
    if spec.hash != "flagd":
        problems.append(Problem(message=f"split uses '{spec.hash}' bucketing; flagd will put "
                                "contexts in different buckets (same shares)", path=where,
                                code="flag.export", severity="warning"))
    weights = [w.weight for w in serve.split or []]
    scale = 1 if all(float(w).is_integer() for w in weights) else 100
    buckets = [[w.variant, round(w.weight * scale)] for w in serve.split or []]
    by = spec.by[0]
    if by == "targetingKey" and spec.salt is None:
        return {"fractional": buckets}
    return {"fractional": [{"var": by}, *buckets]}


def export_flagd(flagset: FlagSet, environment: str | None = None,
                 ) -> tuple[dict[str, Any], list[Problem]]:
    """A flagd document for ``environment`` plus problems for anything flagd cannot express."""
    problems: list[Problem] = []
    used: set[str] = set()
    out_flags: dict[str, Any] = {}
    for key, flag in sorted(flagset.flags.items()):
        resolved = resolve(flag, environment)
        where = f"flags.{key}"
        if flag.prerequisites:
            problems.append(Problem(message=f"flag '{key}': flagd has no prerequisites; "
                                    "they are dropped", path=where, code="flag.export"))
        chain: list[Any] = []
        for index, rule in enumerate(resolved.rules):
            rule_where = f"{where}.rules[{index}]"
            parts = [_logic_of(c, problems, rule_where) for c in rule.when]
            used.update(c.segment for c in rule.when if c.segment)
            if rule.rollout is not None:
                share = rule.rollout.percentage
                problems.append(Problem(message="percentage gate exported as a flagd fractional; "
                                        "flagd picks different contexts", path=rule_where,
                                        code="flag.export", severity="warning"))
                parts.append({"==": [{"fractional": [["in", round(share * 100)],
                                                     ["out", round((100 - share) * 100)]]},
                                     "in"]})
            condition = {"and": parts} if len(parts) > 1 else (parts[0] if parts else True)
            chain += [condition, _serve_logic(flag, rule.serve, problems, rule_where)]
        fallthrough = _serve_logic(flag, resolved.fallthrough, problems, f"{where}.fallthrough")
        default = resolved.fallthrough.variant or resolved.off_variant
        entry: dict[str, Any] = {
            "state": "ENABLED" if resolved.enabled and not resolved.killed else "DISABLED",
            "variants": {v.name: v.value for v in flag.variants},
            "defaultVariant": default if resolved.enabled and not resolved.killed
            else resolved.off_variant,
        }
        if chain:
            entry["targeting"] = {"if": [*chain, fallthrough]}
        elif not isinstance(fallthrough, str):
            entry["targeting"] = fallthrough
        metadata = {k: v for k, v in flag.metadata.items()
                    if isinstance(v, str | int | float | bool)}
        if metadata:
            entry["metadata"] = metadata
        out_flags[key] = entry
    document: dict[str, Any] = {"$schema": SCHEMA, "flags": out_flags}
    evaluators = {name: _segment_logic(flagset.segments[name], problems)
                  for name in sorted(used) if name in flagset.segments}
    if evaluators:
        document["$evaluators"] = evaluators
    return document, problems


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
