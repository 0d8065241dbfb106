"""Compile one flag (for one environment) into a fast evaluation function.

Each flag becomes a small generated Python function: conditions on string attributes with
``in``/``equals`` are inlined as set lookups, other operators call predicates built by
:mod:`rollwave.flags.operators`, native bucketing is an inlined murmur3 call, and every
possible outcome is an :class:`~rollwave.flags.details.EvaluationDetails` built here once.
User-supplied text never reaches the generated source: keys, operands and results are bound
as constants (``K0``, ``C0``, ``R0``…) in the function's namespace, with no builtins.

The generated function never looks at the clock and never does I/O; exceptions it raises
(only possible for contexts of unexpected shape) are turned into ERROR details by the engine.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import mmh3

from rollwave.flags import bucketing
from rollwave.flags.details import ErrorCode, EvaluationDetails, Reason
from rollwave.flags.errors import FlagDefinitionError
from rollwave.flags.model import Bucketing, Condition, Flag, Operator, Rule, Segment, Serve
from rollwave.flags.operators import compile_predicate, text

Evaluator = Callable[[Mapping[str, Any]], EvaluationDetails]
Lookup = Mapping[str, tuple[str, Evaluator]]


@dataclass(slots=True)
class ResolvedFlag:
    """A flag's settings as they apply in one environment."""

    flag: Flag
    enabled: bool
    killed: bool
    rules: list[Rule]
    fallthrough: Serve
    off_variant: str


def resolve(flag: Flag, environment: str | None) -> ResolvedFlag:
    """Apply the environment's settings (enabled, killed, overrides) to ``flag``."""
    settings = flag.environments.get(environment) if environment is not None else None
    if settings is None:
        return ResolvedFlag(flag, flag.enabled, flag.killed, list(flag.rules),
                            flag.default_fallthrough(), flag.default_off_variant())
    return ResolvedFlag(
        flag,
        settings.enabled,
        flag.killed or settings.killed,
        list(settings.rules if settings.rules is not None else flag.rules),
        settings.fallthrough or flag.default_fallthrough(),
        settings.off_variant or flag.default_off_variant(),
    )


def compile_segment(segment: Segment) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over the context: included, else not excluded and all conditions hold."""
    included = frozenset(segment.included)
    excluded = frozenset(segment.excluded)
    by = segment.by
    checks = [(c.attribute, compile_predicate(c)) for c in segment.when if c.attribute]
    logic = [_jsonlogic(c.jsonlogic) for c in segment.when if c.jsonlogic is not None]

    def member(ctx: Mapping[str, Any]) -> bool:
        key = ctx.get(by)
        if key is not None:
            key = text(key)
            if key in excluded:
                return False
            if key in included:
                return True
        if not checks and not logic:
            return False
        return all(pred(ctx.get(attr)) for attr, pred in checks) and all(
            fn(ctx) for fn in logic)
    return member


def _jsonlogic(expression: Any) -> Callable[[Mapping[str, Any]], bool]:
    from rollwave.flags.jsonlogic import compile_condition
    return compile_condition(expression)


def _random_key() -> str:
    return str(random.randint(1, 10_000))  # noqa: S311 - bucketing, not security


@dataclass
class _Gen:
    """Source lines plus the constants they refer to."""

    flag: Flag
    segments: Mapping[str, Callable[[Mapping[str, Any]], bool]]
    lookup: Lookup
    metadata: Mapping[str, Any]
    lines: list[str] = field(default_factory=list)
    names: dict[str, Any] = field(default_factory=dict)
    counter: int = 0

    def const(self, prefix: str, value: Any) -> str:
        name = f"{prefix}{self.counter}"
        self.counter += 1
        self.names[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def result(self, variant: str, reason: str, rule_id: str | None) -> str:
        value = next(v.value for v in self.flag.variants if v.name == variant)
        return self.const("R", EvaluationDetails(
            flag_key=self.flag.key, value=value, variant=variant, reason=reason,
            rule_id=rule_id, flag_metadata=self.metadata))

    def error(self, code: str, message: str) -> str:
        return self.const("E", EvaluationDetails(
            flag_key=self.flag.key, value=None, variant=None, reason=Reason.ERROR,
            error_code=code, error_message=message, flag_metadata=self.metadata))

    # -- conditions ---------------------------------------------------------------------------

    def condition(self, cond: Condition) -> str:
        if cond.segment is not None:
            member = self.segments.get(cond.segment)
            if member is None:
                return "False"
            name = self.const("S", member)
            return f"(not {name}(ctx))" if cond.negate else f"{name}(ctx)"
        if cond.jsonlogic is not None:
            name = self.const("J", _jsonlogic(cond.jsonlogic))
            return f"(not {name}(ctx))" if cond.negate else f"{name}(ctx)"
        assert cond.attribute is not None
        key = self.const("K", cond.attribute)
        pred = self.const("P", compile_predicate(cond))
        operands = cond.operands()
        fast = (cond.op in (Operator.IN, Operator.EQUALS) and not cond.negate
                and not cond.case_insensitive and all(isinstance(v, str) for v in operands))
        if fast:
            members = self.const("C", frozenset(operands))
            return (f"({pred}(_v) if (_v := _g({key})).__class__ is not str "
                    f"else _v in {members})")
        return f"{pred}(_g({key}))"

    # -- bucketing ----------------------------------------------------------------------------

    def bucket_value(self, depth: int, spec: Bucketing, on_missing: str) -> None:
        """Emit code leaving the bucketing value (a str) in ``_k``; ``on_missing`` if absent."""
        for index, attribute in enumerate(spec.by):
            name = self.const("K", attribute)
            if index == 0:
                self.emit(depth, f"_k = _g({name})")
            else:
                self.emit(depth, "if _k is None:")
                self.emit(depth + 1, f"_k = _g({name})")
        self.emit(depth, "if _k is None:")
        if spec.random:
            self.emit(depth + 1, "_k = _random()")
        else:
            self.emit(depth + 1, on_missing)
        self.emit(depth, "if _k.__class__ is not str:")
        self.emit(depth + 1, "_k = _text(_k)")

    def bucket_expr(self, spec: Bucketing, purpose: str, total: float) -> str:
        salt = spec.salt if spec.salt is not None else self.flag.key
        if spec.hash == "rollwave":
            seed = self.const("H", bucketing.rollwave_seed(salt))
            return f"(_h(_k, {seed}, False) % 10000)"
        fn = self.const("B", bucketing.make_bucket_fn(spec.hash, salt, purpose=purpose,
                                                      total=total))
        return f"{fn}(_k)"

    # -- serving ------------------------------------------------------------------------------

    def serve(self, depth: int, serve: Serve, reason: str, rule_id: str | None) -> None:
        if serve.variant is not None:
            self.emit(depth, f"return {self.result(serve.variant, reason, rule_id)}")
            return
        split = serve.split or []
        spec = serve.bucketing or self.flag.bucketing
        missing = self.error(ErrorCode.TARGETING_KEY_MISSING,
                             f"'{'/'.join(spec.by)}' is needed to bucket this context")
        self.bucket_value(depth, spec, f"return {missing}")
        weights = [w.weight for w in split]
        bounds = bucketing.bounds_for(spec.hash, weights)
        self.emit(depth, f"_b = {self.bucket_expr(spec, 'split', sum(weights))}")
        last = None
        live = [(s, b) for s, b in zip(split, bounds, strict=True) if s.weight > 0]
        for position, (slice_, bound) in enumerate(live):
            last = self.result(slice_.variant, Reason.SPLIT, rule_id)
            if position == len(live) - 1 and spec.hash == "rollwave":
                break  # the last native slice always ends at 10,000
            self.emit(depth, f"if _b < {self.const('N', bound)}:")
            self.emit(depth + 1, f"return {last}")
        self.emit(depth, f"return {last}" if last else
                  f"return {self.error(ErrorCode.GENERAL, 'split has no weight')}")

    def rule(self, depth: int, rule: Rule, index: int) -> None:
        rule_id = rule.id or f"rule-{index}"
        tests = [self.condition(c) for c in rule.when] or ["True"]
        self.emit(depth, f"if {' and '.join(tests)}:")
        inner = depth + 1
        if rule.rollout is not None:
            spec = rule.rollout.bucketing or self.flag.bucketing
            self.emit(inner, "while True:")  # a breakable block: a missing key skips the rule
            body = inner + 1
            self.bucket_value(body, spec, "break")
            bound = self.const("N", bucketing.gate_bound(spec.hash, rule.rollout.percentage))
            self.emit(body, f"if {self.bucket_expr(spec, 'gate', 100)} >= {bound}:")
            self.emit(body + 1, "break")
            self.serve(body, rule.serve, _rule_reason(rule), rule_id)
        else:
            self.serve(inner, rule.serve, _rule_reason(rule), rule_id)


def _rule_reason(rule: Rule) -> str:
    return Reason.SPLIT if rule.serve.split is not None else Reason.TARGETING_MATCH


def compile_flag(
    resolved: ResolvedFlag,
    segments: Mapping[str, Callable[[Mapping[str, Any]], bool]],
    lookup: Lookup,
) -> Evaluator:
    """Compile ``resolved`` into an evaluator; raise FlagDefinitionError on bad operands.

    ``lookup`` maps flag keys to ``(type, evaluator)`` and is read at evaluation time, so
    prerequisites see the evaluators of the same snapshot.
    """
    flag = resolved.flag
    metadata: Mapping[str, Any] = MappingProxyType(dict(flag.metadata))
    gen = _Gen(flag=flag, segments=segments, lookup=lookup, metadata=metadata)
    if resolved.killed or not resolved.enabled:
        off = gen.result(resolved.off_variant, Reason.DISABLED, None)
        details: EvaluationDetails = gen.names[off]
        return lambda ctx: details
    gen.emit(0, "def evaluate(ctx):")
    gen.emit(1, "_g = ctx.get")
    for prereq in flag.prerequisites:
        wanted = gen.const("C", frozenset(prereq.variants))
        check = gen.const("Q", _prerequisite(lookup, prereq.flag))
        failed = gen.result(resolved.off_variant, Reason.DISABLED, f"prerequisite:{prereq.flag}")
        gen.emit(1, f"if {check}(ctx) not in {wanted}:")
        gen.emit(2, f"return {failed}")
    for index, rule in enumerate(resolved.rules):
        try:
            gen.rule(1, rule, index)
        except FlagDefinitionError as exc:
            raise FlagDefinitionError(f"flag '{flag.key}' rule {rule.id or index}: "
                                      f"{exc.message}", hint=exc.hint) from None
    static = not resolved.rules and not flag.prerequisites
    reason = Reason.STATIC if static else Reason.DEFAULT
    if resolved.fallthrough.split is not None:
        reason = Reason.SPLIT
    gen.serve(1, resolved.fallthrough, reason, None)
    namespace: dict[str, Any] = {
        "__builtins__": {}, "_h": mmh3.hash, "_text": text, "_random": _random_key,
        "False": False, "True": True, "str": str,
    }
    namespace.update(gen.names)
    source = "\n".join(gen.lines)
    exec(compile(source, f"<flag {flag.key!r}>", "exec"), namespace)  # noqa: S102
    evaluate: Evaluator = namespace["evaluate"]
    evaluate.__doc__ = source
    return evaluate


def _prerequisite(lookup: Lookup, key: str) -> Callable[[Mapping[str, Any]], str | None]:
    def variant_of(ctx: Mapping[str, Any]) -> str | None:
        entry = lookup.get(key)
        if entry is None:
            return None
        details = entry[1](ctx)
        return None if details.error_code is not None else details.variant
    return variant_of
