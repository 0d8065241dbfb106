"""Pydantic models of feature flags and segments (the YAML and JSON forms share them).

A :class:`Flag` has typed named variants, targeting :class:`Rule`\\ s evaluated top to bottom,
a fallthrough :class:`Serve` for contexts no rule takes, an off variant served when the flag is
disabled or killed, prerequisites on other flags, per-environment settings and a rollout plan
(steps with guards, executed by :mod:`rollwave.flags.rollouts`). See ``docs/flags.md``.

Variant names given as YAML booleans (``on``/``off``/``true``/``false`` all parse as booleans in
YAML 1.1) are read as the names ``"true"`` and ``"false"``, which are also the default variant
names of a boolean flag; so ``serve: on`` in YAML means the ``true`` variant.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

FlagType = Literal["boolean", "string", "number", "json"]
HashAlgorithm = Literal["rollwave", "flagd", "unleash"]

KEY_PATTERN = r"^[^\s/\\?#%]{1,200}$"
"""Flag and segment keys: 1-200 characters, no whitespace and nothing that breaks a URL path."""

MAX_RULES = 1_000
MAX_VALUES = 10_000


class Operator(StrEnum):
    """Condition operators; every one of them may be negated with ``negate: true``."""

    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    MATCHES = "matches"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    SEMVER_EQ = "semver_eq"
    SEMVER_LT = "semver_lt"
    SEMVER_LTE = "semver_lte"
    SEMVER_GT = "semver_gt"
    SEMVER_GTE = "semver_gte"
    BEFORE = "before"
    AFTER = "after"
    IN_CIDR = "in_cidr"
    EXISTS = "exists"


def variant_name(value: Any) -> Any:
    """YAML booleans used as variant names become ``"true"``/``"false"``; numbers become text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Model):
    """One test on the context: ``attribute op values``, a segment reference, or JSON Logic.

    Exactly one of ``attribute`` (with ``op``), ``segment`` or ``jsonlogic`` is set. A
    condition on an attribute that the context lacks is false (``not_equals``/``not_in`` are
    true), and ``negate`` flips the final answer.
    """

    attribute: str | None = Field(default=None, min_length=1, max_length=200)
    op: Operator | None = None
    value: Any = None
    values: list[Any] | None = Field(default=None, max_length=MAX_VALUES)
    negate: bool = False
    case_insensitive: bool = False
    segment: str | None = Field(default=None, pattern=KEY_PATTERN)
    jsonlogic: Any = None

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        kinds = [self.attribute is not None, self.segment is not None, self.jsonlogic is not None]
        if sum(kinds) != 1:
            raise ValueError("a condition needs exactly one of 'attribute', 'segment' or "
                             "'jsonlogic'")
        if self.attribute is not None:
            if self.op is None:
                raise ValueError(f"condition on '{self.attribute}' needs 'op' (one of: "
                                 + ", ".join(o.value for o in Operator) + ")")
            if self.op is not Operator.EXISTS and self.value is None and not self.values:
                raise ValueError(f"operator '{self.op.value}' needs 'value' or 'values'")
            if self.value is not None and self.values is not None:
                raise ValueError("give either 'value' or 'values', not both")
        elif self.op is not None:
            raise ValueError("'op' only goes with 'attribute'")
        return self

    def operands(self) -> list[Any]:
        """The comparison operands as a list (``value`` alone becomes a one-item list)."""
        if self.values is not None:
            return list(self.values)
        return [] if self.value is None else [self.value]


class Bucketing(_Model):
    """How a context is put into a bucket for percentages and weighted splits.

    ``by`` lists attributes tried in order (the first one present is hashed); ``random``
    falls back to a random bucket when none is present (Unleash semantics) instead of an
    error. ``salt`` defaults to the flag key. ``hash`` chooses the bucketing algorithm:
    ``rollwave`` (10,000 buckets, murmur3), or ``flagd``/``unleash`` to bucket exactly as those
    systems do for imported flags.
    """

    by: list[str] = Field(default_factory=lambda: ["targetingKey"], min_length=1, max_length=8)
    salt: str | None = Field(default=None, max_length=200)
    hash: HashAlgorithm = "rollwave"
    random: bool = False

    @field_validator("by", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class WeightedVariant(_Model):
    """One slice of a split: ``weight`` is relative (percentages summing to 100 are usual)."""

    variant: str = Field(min_length=1, max_length=200)
    weight: float = Field(ge=0)

    _name = field_validator("variant", mode="before")(classmethod(lambda cls, v: variant_name(v)))


class Serve(_Model):
    """What a rule or the fallthrough serves: one ``variant`` or a weighted ``split``."""

    variant: str | None = Field(default=None, min_length=1, max_length=200)
    split: list[WeightedVariant] | None = Field(default=None, min_length=1, max_length=1000)
    bucketing: Bucketing | None = None

    _name = field_validator("variant", mode="before")(classmethod(lambda cls, v: variant_name(v)))

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str | bool):
            return {"variant": variant_name(data)}
        if isinstance(data, dict) and isinstance(data.get("split"), dict):
            split = [{"variant": variant_name(k), "weight": w} for k, w in data["split"].items()]
            return {**data, "split": split}
        return data

    @model_validator(mode="after")
    def _one(self) -> Serve:
        if (self.variant is None) == (self.split is None):
            raise ValueError("serve needs exactly one of 'variant' or 'split'")
        if self.split is not None:
            total = sum(w.weight for w in self.split)
            if not math.isfinite(total) or total <= 0:
                raise ValueError("split weights must add up to more than 0")
            names = [w.variant for w in self.split]
            if len(set(names)) != len(names):
                raise ValueError("a variant appears twice in the split")
        return self

    def variants(self) -> list[str]:
        """Every variant this serve can produce."""
        if self.variant is not None:
            return [self.variant]
        return [w.variant for w in self.split or []]


class Gate(_Model):
    """A percentage gate on a rule: only this share of matching contexts take the rule."""

    percentage: float = Field(ge=0, le=100)
    bucketing: Bucketing | None = None

    @field_validator("percentage")
    @classmethod
    def _resolution(cls, value: float) -> float:
        if abs(value * 100 - round(value * 100)) > 1e-6:
            raise ValueError("percentages have a resolution of 0.01 (e.g. 12.34)")
        return value


class Rule(_Model):
    """A targeting rule: when every condition holds (and the gate admits), serve."""

    id: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    when: list[Condition] = Field(default_factory=list, max_length=100)
    rollout: Gate | None = None
    serve: Serve

    @field_validator("when", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class Variant(_Model):
    """A named variant with its value (type-checked against the flag's type)."""

    name: str = Field(min_length=1, max_length=200)
    value: Any = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    _name = field_validator("name", mode="before")(classmethod(lambda cls, v: variant_name(v)))


class Prerequisite(_Model):
    """This flag is on only when ``flag`` evaluates to one of ``variants``."""

    flag: str = Field(pattern=KEY_PATTERN)
    variants: list[str] = Field(min_length=1)

    @field_validator("variants", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        value = [value] if not isinstance(value, list) else value
        return [variant_name(v) for v in value]


class EnvironmentSettings(_Model):
    """Per-environment switches and optional overrides of the flag's targeting."""

    enabled: bool = True
    killed: bool = False
    rules: list[Rule] | None = Field(default=None, max_length=MAX_RULES)
    fallthrough: Serve | None = None
    off_variant: str | None = None

    _name = field_validator("off_variant", mode="before")(
        classmethod(lambda cls, v: variant_name(v)))


def _duration(value: Any) -> Any:
    if value is None:
        return None
    from rollwave.core.durations import parse_duration
    parse_duration(value)  # raises ValueError with the accepted forms
    return str(value) if not isinstance(value, str) else value


class Guard(_Model):
    """Metric checks that must hold while a rollout step is live (see ``docs/flags.md``).

    Either ``profile`` (a verification profile of ``rollwave.yaml``, its health, smoke and
    metric checks) or ``metrics`` (metric checks in the verification format: ``name``,
    ``metric``, ``source``, ``fail_above``/``fail_below``…), measured on the chosen
    ``instances`` (a tag expression, or instance keys; default: every instance of the plan's
    environment, at most ``limit``). ``duration``/``interval`` override the window.
    """

    profile: str | None = Field(default=None, min_length=1, max_length=100)
    metrics: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    instances: str | list[str] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    duration: str | int | float | None = None
    interval: str | int | float | None = None

    _windows = field_validator("duration", "interval")(classmethod(lambda cls, v: _duration(v)))

    @model_validator(mode="after")
    def _one_source(self) -> Guard:
        if (self.profile is None) == (not self.metrics):
            raise ValueError("a guard needs either 'profile' (a verification profile of "
                             "rollwave.yaml) or 'metrics' (a list of metric checks)")
        if self.metrics:
            from rollwave.core.model import MetricCheck
            for index, check in enumerate(self.metrics):
                try:
                    MetricCheck.model_validate(check)
                except ValidationError as exc:
                    error = exc.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in error["loc"])
                    message = str(error["msg"]).removeprefix("Value error, ")
                    raise ValueError(f"metrics[{index}]{'.' + where if where else ''}: "
                                     f"{message}") from None
        return self


class RolloutStep(_Model):
    """One step of a progressive rollout: the share to serve, when, and its guards.

    ``after`` (a duration after the previous step went live) and ``at`` (a moment, ISO 8601)
    say when the step may go live (both: the later); the first step goes live at the start
    unless they say otherwise. ``guards`` name guards of the plan (or verification profiles of
    ``rollwave.yaml``) that must pass before the rollout moves on.
    """

    percentage: float = Field(gt=0, le=100)
    at: datetime | None = None
    after: str | None = None
    guards: list[str] = Field(default_factory=list)

    _after = field_validator("after", mode="before")(classmethod(lambda cls, v: _duration(v)))

    @field_validator("percentage")
    @classmethod
    def _resolution(cls, value: float) -> float:
        if abs(value * 100 - round(value * 100)) > 1e-6:
            raise ValueError("percentages have a resolution of 0.01 (e.g. 12.34)")
        return value

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            from datetime import UTC
            return value.replace(tzinfo=UTC)
        return value


class RolloutPlan(_Model):
    """Steps moving ``variant``'s share of the fallthrough up to 100 %, guarded by metrics.

    The rest of the traffic is served ``baseline`` (default: the variant served before the
    rollout, else the off variant). ``environment`` is the environment whose fallthrough the
    steps set (default: the flag's top-level fallthrough). ``bucketing`` defaults to the
    flag's.
    """

    variant: str
    baseline: str | None = None
    environment: str | None = None
    bucketing: Bucketing | None = None
    guards: dict[str, Guard] = Field(default_factory=dict)
    steps: list[RolloutStep] = Field(min_length=1, max_length=100)

    _name = field_validator("variant", "baseline", mode="before")(
        classmethod(lambda cls, v: variant_name(v)))

    @model_validator(mode="after")
    def _increasing(self) -> RolloutPlan:
        last = 0.0
        for step in self.steps:
            if step.percentage < last:
                raise ValueError("rollout steps must not go down in percentage")
            last = step.percentage
        if self.baseline is not None and self.baseline == self.variant:
            raise ValueError("the baseline variant must differ from the rolled-out variant")
        return self

    def guard_names(self) -> set[str]:
        """Every guard name the steps use."""
        return {name for step in self.steps for name in step.guards}


_TYPE_CHECKS: dict[str, tuple[str, Any]] = {
    "boolean": ("a boolean", lambda v: isinstance(v, bool)),
    "string": ("a string", lambda v: isinstance(v, str)),
    "number": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
               and math.isfinite(v)),
    "json": ("JSON (object, array or scalar)", lambda v: True),
}


class Flag(_Model):
    """A feature flag definition; the JSON API and ``flags/<key>.yaml`` both use this shape."""

    key: str = Field(pattern=KEY_PATTERN)
    type: FlagType = "boolean"
    description: str = ""
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    variants: list[Variant] = Field(default_factory=list, max_length=1000)
    off_variant: str | None = None
    fallthrough: Serve | None = None
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES)
    prerequisites: list[Prerequisite] = Field(default_factory=list, max_length=50)
    enabled: bool = False
    killed: bool = False
    environments: dict[str, EnvironmentSettings] = Field(default_factory=dict)
    bucketing: Bucketing = Field(default_factory=Bucketing)
    rollout_plan: RolloutPlan | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    _name = field_validator("off_variant", mode="before")(
        classmethod(lambda cls, v: variant_name(v)))

    @field_validator("variants", mode="before")
    @classmethod
    def _variant_map(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return [{"name": variant_name(k), "value": v} for k, v in value.items()]
        return value

    @model_validator(mode="before")
    @classmethod
    def _boolean_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type", "boolean") == "boolean" \
                and not data.get("variants"):
            data = {**data, "variants": [{"name": "true", "value": True},
                                         {"name": "false", "value": False}]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Flag:
        if not self.variants:
            raise ValueError("a flag needs at least one variant")
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique: {', '.join(dupes)}")
        what, check = _TYPE_CHECKS[self.type]
        for variant in self.variants:
            if not check(variant.value):
                raise ValueError(f"variant '{variant.name}' must be {what} for a {self.type} "
                                 f"flag, got {variant.value!r}")
        known = set(names)
        problems = [
            f"{where} names unknown variant '{name}'"
            for where, name in self._variant_references()
            if name not in known
        ]
        ids = [r.id for r in self.all_rules() if r.id]
        dupe_ids = sorted({i for i in ids if ids.count(i) > 1})
        if dupe_ids:
            problems.append(f"rule ids must be unique: {', '.join(dupe_ids)}")
        if any(p.flag == self.key for p in self.prerequisites):
            problems.append("a flag cannot be its own prerequisite")
        if problems:
            raise ValueError("; ".join(problems) + f" (variants are: {', '.join(names)})")
        return self

    def _variant_references(self) -> list[tuple[str, str]]:
        refs: list[tuple[str, str]] = []
        if self.off_variant:
            refs.append(("off_variant", self.off_variant))
        if self.fallthrough:
            refs.extend(("fallthrough", n) for n in self.fallthrough.variants())
        for i, rule in enumerate(self.rules):
            refs.extend((f"rules[{i}]", n) for n in rule.serve.variants())
        for env, settings in self.environments.items():
            if settings.off_variant:
                refs.append((f"environments.{env}.off_variant", settings.off_variant))
            if settings.fallthrough:
                refs.extend((f"environments.{env}.fallthrough", n)
                            for n in settings.fallthrough.variants())
            for i, rule in enumerate(settings.rules or []):
                refs.extend((f"environments.{env}.rules[{i}]", n) for n in rule.serve.variants())
        if self.rollout_plan:
            refs.append(("rollout_plan.variant", self.rollout_plan.variant))
            if self.rollout_plan.baseline:
                refs.append(("rollout_plan.baseline", self.rollout_plan.baseline))
        return refs

    def all_rules(self) -> list[Rule]:
        """The flag's rules followed by every environment's override rules."""
        out = list(self.rules)
        for settings in self.environments.values():
            out.extend(settings.rules or [])
        return out

    def default_off_variant(self) -> str:
        """The variant served when disabled: ``off_variant``, else ``false``/``off``, else last."""
        if self.off_variant:
            return self.off_variant
        names = [v.name for v in self.variants]
        for candidate in ("false", "off"):
            if candidate in names:
                return candidate
        return names[-1]

    def default_fallthrough(self) -> Serve:
        """The fallthrough: as given, else ``true``/``on`` for booleans, else the first variant."""
        if self.fallthrough is not None:
            return self.fallthrough
        names = [v.name for v in self.variants]
        for candidate in ("true", "on"):
            if candidate in names:
                return Serve(variant=candidate)
        return Serve(variant=names[0])

    def segment_refs(self) -> set[str]:
        """Keys of every segment this flag's conditions name."""
        return {c.segment for r in self.all_rules() for c in r.when if c.segment}


class Segment(_Model):
    """A reusable audience: explicit includes/excludes by an attribute, then conditions."""

    key: str = Field(pattern=KEY_PATTERN)
    description: str = ""
    by: str = "targetingKey"
    included: list[str] = Field(default_factory=list, max_length=100_000)
    excluded: list[str] = Field(default_factory=list, max_length=100_000)
    when: list[Condition] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _no_nesting(self) -> Segment:
        if any(c.segment for c in self.when):
            raise ValueError("segments cannot refer to other segments")
        return self


class FlagSet(_Model):
    """Every flag and segment of a workspace or store, as compiled together by the engine."""

    flags: dict[str, Flag] = Field(default_factory=dict)
    segments: dict[str, Segment] = Field(default_factory=dict)
