"""The workspace model: what users write in ``rollwave.yaml`` and ``customers/*.yaml``.

These pydantic models validate one file each (every problem reported with its path); the
cross-file checks (unknown references, impossible policies) live in
:mod:`rollwave.workspace.loader`. Models are frozen: the functional core treats them as data.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rollwave.core import tagexpr
from rollwave.core.durations import Duration
from rollwave.core.windows import WindowSpec, parse_days

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_ID = re.compile(ID_PATTERN)
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]
"""Lower-case letters, digits, ``_ . -``; used in file names, URLs and commands."""


def check_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA time zone, else raise ValueError with a hint."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        raise ValueError(
            f"unknown time zone '{name}'; use an IANA name such as Europe/Berlin or UTC"
        ) from None
    return name


class Strict(BaseModel):
    """Base of every file model: unknown keys are errors (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- windows and freezes ---------------------------------------------------------------------


def _parse_clock(value: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ValueError(f"'{value}' is not a time of day; write HH:MM, e.g. 22:00")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24:
        if minute:
            raise ValueError(f"'{value}' is not a time of day")
        return time(0, 0)  # midnight at the end of the day: the window wraps to it
    return time(hour, minute)


class Window(Strict):
    """A recurring maintenance window in local time, e.g. weekdays 22:00–04:00 Europe/Berlin."""

    days: list[str] | str = "daily"
    start: str
    end: str
    timezone: str | None = None

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str] | str) -> list[str] | str:
        parse_days(value)
        return value

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        _parse_clock(value)
        return value

    @field_validator("start")
    @classmethod
    def _start_in_day(cls, value: str) -> str:
        if value.strip() == "24:00":
            raise ValueError("a window cannot start at 24:00 (the end of the day); "
                             "start at 00:00 on the next day instead")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if _parse_clock(self.start) == _parse_clock(self.end) and self.end.strip() != "24:00":
            raise ValueError("a window's start and end are equal: it would never be open")
        return self

    def spec(self, default_timezone: str) -> WindowSpec:
        """The pure-core form, with the customer's time zone as the default."""
        return WindowSpec(days=parse_days(self.days), start=_parse_clock(self.start),
                          end=_parse_clock(self.end), timezone=self.timezone or default_timezone)


class Freeze(Strict):
    """A period in which nothing is deployed (except by an emergency policy)."""

    name: str
    start: datetime
    end: datetime
    reason: str = ""
    environments: list[str] | None = None

    @model_validator(mode="after")
    def _order(self) -> Freeze:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("freeze start and end need a time zone, e.g. 2026-12-20T00:00:00Z")
        if self.end <= self.start:
            raise ValueError("a freeze must end after it starts")
        if self.environments is not None and not self.environments:
            raise ValueError("an empty 'environments' list freezes nothing; remove the key to "
                             "freeze every environment")
        return self


# --- verification ----------------------------------------------------------------------------


class HealthCheck(Strict):
    """HTTP GET that must answer ``expect_status`` within ``timeout``."""

    path: str = "/health"
    expect_status: int = 200
    timeout: Duration = 2.0


class SmokeCheck(Strict):
    """One request after deploy whose answer must match."""

    name: str
    path: str
    method: Literal["GET", "POST", "HEAD"] = "GET"
    expect_status: int = 200
    expect_body: str | None = None
    timeout: Duration = 5.0


class MetricCheck(Strict):
    """A metric over the verification window compared with thresholds.

    ``metric`` names a measure the metric source derives (for the embedded scrape:
    ``error_ratio``, ``p95_latency_ms``, ``p99_latency_ms``, ``request_rate``) or a query in the
    source's language. A value above ``fail_above`` or below ``fail_below`` is a failure.
    ``params`` are source-specific settings of this check (for the scrape: ``requests_metric``,
    ``status_label``, ``error_status``, ``latency_metric``, ``match``, ``exclude``; see
    ``rollwave.adapters.metrics.scrape``).
    """

    name: str
    metric: str
    source: str = "scrape"
    fail_above: float | None = None
    fail_below: float | None = None
    min_samples: int = 1
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _some_threshold(self) -> MetricCheck:
        if self.fail_above is None and self.fail_below is None:
            raise ValueError(f"metric check '{self.name}' needs fail_above or fail_below")
        return self


# --- fleet analysis: verification.<profile>.fleet (see rollwave.verification.policy) ----------


def _fraction(value: Any) -> Any:
    """``"25%"`` → 0.25; numbers pass through (pydantic checks them)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"'{value}' is not a percentage such as 25%") from None
    return value


Fraction = Annotated[float, BeforeValidator(_fraction), WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"}]})]
"""A fraction written as a number (``0.25``) or a percentage (``25%``)."""

Direction = Literal["increase", "decrease", "either"]


class FleetCheckBase(Strict):
    """What every fleet check has: a unique name and how many failed reads in a row it takes."""

    name: str = Field(min_length=1, max_length=100)
    consecutive_error_limit: int = Field(default=4, ge=0)


class RatioFleetCheck(FleetCheckBase):
    """A ratio of counters (errors / requests) after the update against before, pooled counts."""

    kind: Literal["ratio"]
    numerator: str = "errors"
    denominator: str = "requests"
    direction: Direction = "increase"
    allowed_increase: Fraction = 0.5
    allowed_decrease: Fraction = 0.5
    min_change: Fraction = 0.002
    confidence: Fraction = 0.99
    min_denominator: float = Field(default=30.0, gt=0)


class GaugeFleetCheck(FleetCheckBase):
    """A gauge (latency, memory) after the update against before, corrected by stable peers."""

    kind: Literal["gauge"]
    metric: str
    direction: Direction = "increase"
    allowed_increase: Fraction = 0.25
    allowed_decrease: Fraction = 0.25
    confidence: Fraction = 0.99
    peer_margin: float = Field(default=3.0, ge=0)
    min_samples: int = Field(default=3, ge=2)
    min_baseline: int = Field(default=10, ge=2)
    trend_horizon: Duration | None = None
    load: str | None = None


class BurnWindowSpec(Strict):
    """Long and short windows that must both burn at ``factor`` x the budget or more."""

    long: Duration
    short: Duration
    factor: float = Field(gt=0)


class BurnRateFleetCheck(FleetCheckBase):
    """An availability SLO on errors / total with multiwindow burn rates (scaled to the bake)."""

    kind: Literal["burn_rate"]
    errors: str = "errors"
    total: str = "requests"
    objective: Fraction = 0.99
    windows: Literal["sre"] | list[BurnWindowSpec] = "sre"
    min_events: float = Field(default=30.0, ge=0)


class ThresholdFleetCheck(FleetCheckBase):
    """A metric held to fixed conditions, measured once per interval (Argo Rollouts' rules)."""

    kind: Literal["threshold"]
    metric: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    success: str | None = None
    failure: str | None = None
    failure_limit: int = Field(default=0, ge=-1)
    inconclusive_limit: int = Field(default=0, ge=0)
    count: int | None = Field(default=None, ge=1)
    no_data: Literal["error", "inconclusive", "failed", "successful"] = "error"

    @model_validator(mode="after")
    def _one_measure(self) -> ThresholdFleetCheck:
        ratio = self.numerator is not None and self.denominator is not None
        if (self.metric is None) != ratio or (self.numerator is None) != (
                self.denominator is None):
            raise ValueError(f"threshold check '{self.name}' needs either metric or both "
                             "numerator and denominator")
        return self


FleetCheck = Annotated[RatioFleetCheck | GaugeFleetCheck | BurnRateFleetCheck
                       | ThresholdFleetCheck, Field(discriminator="kind")]


class BlameSettings(Strict):
    """The numbers of the blame rules (see docs/verification.md, "How blame decides")."""

    min_customers: int = Field(default=2, ge=2)
    min_clearing_peers: int = Field(default=2, ge=1)
    patience: Duration = 900.0
    incident_min_instances: int = Field(default=2, ge=1)
    incident_fraction: Fraction = Field(default=0.3, gt=0, le=1)


def _standard_fleet_checks() -> list[FleetCheck]:
    return [RatioFleetCheck(kind="ratio", name="error-ratio"),
            GaugeFleetCheck(kind="gauge", name="p95-latency", metric="latency_p95",
                            load="requests")]


class FleetAnalysis(Strict):
    """How the fleet is judged during a rollout: the series, the windows, the checks, blame.

    ``source`` names a metric source (``scrape`` or one under ``metric_sources``); checks name
    that source's logical metrics (``requests``, ``errors``, ``latency_p95``, ...). Without
    ``checks``, an error-ratio and a p95-latency check are used.
    """

    source: str = "scrape"
    step: Duration = Field(default=60.0, gt=0)
    interval: Duration = 300.0
    bake: Duration = 1800.0
    baseline: Duration = 3600.0
    warmup: Duration = 0.0
    incident_window: Duration | None = None
    cohort: str | None = None
    checks: list[FleetCheck] = Field(default_factory=_standard_fleet_checks, min_length=1)
    blame: BlameSettings = BlameSettings()


class Verification(Strict):
    """How an instance is verified after a deploy: health, smoke requests and metrics.

    ``fleet`` (optional) describes the fleet-level analysis of rollouts using this profile.
    """

    duration: Duration = 30.0
    interval: Duration = 5.0
    health: HealthCheck | None = HealthCheck()
    smoke: list[SmokeCheck] = []
    metrics: list[MetricCheck] = []
    min_requests: int = 20
    consecutive_error_limit: int = 4
    fleet: FleetAnalysis | None = None

    @model_validator(mode="after")
    def _interval(self) -> Verification:
        if self.interval <= 0:
            raise ValueError("verification interval must be positive")
        if self.duration and self.interval > self.duration:
            raise ValueError(
                f"verification interval ({self.interval:g}s) is longer than its duration "
                f"({self.duration:g}s): no second sample would ever be taken"
            )
        return self


# --- policies --------------------------------------------------------------------------------

Amount = int | Annotated[str, Field(pattern=r"^\d+(\.\d+)?%$")]
"""A count (``5``) or a percentage of the wave (``"10%"``)."""


class Selector(Strict):
    """Which of the remaining instances a wave takes.

    ``match`` filters by tag expression; ``customers`` by id; ``percent`` takes that share of the
    remaining fleet (rounded up) from the candidates; ``rest`` takes everything left.
    """

    match: str | None = None
    customers: list[str] | None = None
    percent: float | None = Field(default=None, gt=0, le=100)
    limit: int | None = Field(default=None, ge=1)
    rest: bool = False

    @field_validator("match")
    @classmethod
    def _expr(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                tagexpr.parse(value)
            except tagexpr.TagExprError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _something(self) -> Selector:
        if self.rest and (self.match or self.customers or self.percent or self.limit):
            raise ValueError("'rest' takes everything left; it cannot be combined with filters")
        if not (self.rest or self.match or self.customers or self.percent or self.limit):
            raise ValueError("a selector needs match, customers, percent, limit or rest: true")
        return self


class ApprovalGate(Strict):
    """A person must approve before the wave starts (``min_approvals`` distinct people)."""

    kind: Literal["approval"] = "approval"
    min_approvals: int = Field(default=1, ge=1)
    roles: list[str] = []


class CommandGate(Strict):
    """A check command (e.g. CI status) that must exit 0 before the wave starts; retried."""

    kind: Literal["command"] = "command"
    name: str = "ci"
    command: list[str]
    retry_every: Duration = 30.0
    timeout: Duration = 60.0


class HttpGate(Strict):
    """An HTTP GET (e.g. a CI status API) that must answer 2xx before the wave starts."""

    kind: Literal["http"] = "http"
    name: str = "ci"
    url: str
    retry_every: Duration = 30.0
    timeout: Duration = 10.0


Gate = Annotated[ApprovalGate | CommandGate | HttpGate, Field(discriminator="kind")]


def _wave_schema(schema: dict[str, Any]) -> None:
    """The shorthands the validators accept: ``select: rest`` and ``gates: [approval]``."""
    props = schema.get("properties", {})
    if "select" in props:
        props["select"] = {"anyOf": [props["select"], {"const": "rest"}]}
    gates = props.get("gates")
    if isinstance(gates, dict) and "items" in gates:
        gates["items"] = {"anyOf": [{"const": "approval"}, gates["items"]]}


class Wave(Strict):
    """One step of a rollout: which instances, how many at once, how long to bake, what may fail."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              json_schema_extra=_wave_schema)

    name: str = Field(min_length=1, max_length=100)
    select: Selector
    parallelism: Amount = 1
    bake: Duration = 0.0
    failure_budget: Amount = 0
    gates: list[Gate] = []

    @field_validator("select", mode="before")
    @classmethod
    def _rest_shorthand(cls, value: Any) -> Any:
        return {"rest": True} if value == "rest" else value

    @field_validator("gates", mode="before")
    @classmethod
    def _gate_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"kind": "approval"} if item == "approval" else item for item in value]
        return value

    @field_validator("parallelism")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("parallelism must be at least 1")
        if isinstance(value, str) and float(value[:-1]) <= 0:
            raise ValueError("parallelism must be above 0%")
        return value

    @field_validator("failure_budget")
    @classmethod
    def _non_negative(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("failure_budget cannot be negative")
        if isinstance(value, str) and float(value[:-1]) > 100:
            raise ValueError("a failure budget above 100% can never be exceeded; use a count "
                             "or a percentage up to 100%")
        return value

    @field_validator("bake")
    @classmethod
    def _plausible_bake(cls, value: float) -> float:
        if value > 7 * 86400:
            raise ValueError("a bake time over a week is almost certainly a typo; write e.g. "
                             "30m or 2h")
        return value


class Policy(Strict):
    """How a release moves through the fleet.

    ``on_failure`` decides what happens when a wave's failures exceed its budget: ``pause`` waits
    for a human (resume or rollback); ``rollback`` rolls the release back everywhere it went.
    An ``emergency`` policy ignores maintenance windows and freezes, keeps its first wave as the
    canary and runs every later wave as one, multiplies bake times by ``compress``; it keeps
    verification and gates and demands a recorded reason.
    """

    description: str = ""
    waves: list[Wave] = Field(min_length=1)
    verification: str = "default"
    on_failure: Literal["pause", "rollback"] = "pause"
    on_inconclusive: Literal["pause", "rollback"] = "pause"
    emergency: bool = False
    compress: float = Field(default=0.1, ge=0, le=1)
    drift: Literal["refuse", "skip", "repair"] = "refuse"
    environments: list[str] | None = None

    @model_validator(mode="after")
    def _rest_last(self) -> Policy:
        for wave in self.waves[:-1]:
            if wave.select.rest:
                raise ValueError(
                    f"wave '{wave.name}' takes the rest of the fleet, so the waves after it "
                    "would always be empty; move it last"
                )
        names = [wave.name for wave in self.waves]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"wave names must be unique; repeated: {', '.join(dupes)}")
        return self


# --- project, services, deployers ----------------------------------------------------------


class Environment(Strict):
    description: str = ""
    production: bool = True


class LocalRun(Strict):
    """How the ``local`` deployer starts one instance of a service: an argv with placeholders.

    Placeholders: ``{python}``, ``{port}``, ``{version}``, ``{config_file}``, ``{instance}``,
    ``{customer}``, ``{state_dir}``. The default runs the bundled demo service.
    """

    command: list[str] = [
        "{python}", "-m", "rollwave.demo_service", "--port", "{port}",
        "--version", "{version}", "--config", "{config_file}", "--instance", "{instance}",
    ]
    env: dict[str, str] = {}
    start_timeout: Duration = 15.0


class Service(Strict):
    """A deployable service; every instance runs some of them."""

    description: str = ""
    deployer: str = "local"
    verification: str | None = None
    local: LocalRun = LocalRun()
    config_schema: str | None = None


class Project(Strict):
    """``rollwave.yaml``: the fleet-wide settings."""

    project: Identifier
    environments: dict[Identifier, Environment] = Field(min_length=1)
    services: dict[Identifier, Service] = Field(min_length=1)
    deployers: dict[Identifier, dict[str, Any]] = {"local": {"kind": "local"}}
    metric_sources: dict[Identifier, dict[str, Any]] = {}
    verification: dict[Identifier, Verification] = {"default": Verification()}
    policies: dict[Identifier, Policy] = Field(min_length=1)
    default_policy: Identifier = "standard"
    freezes: list[Freeze] = []
    secrets: dict[str, Any] = {}
    notifications: dict[str, Any] = {}


# --- customers and instances -----------------------------------------------------------------


class Instance(Strict):
    """One running copy of the product for a customer (``customer/instance``)."""

    environment: Identifier
    services: list[Identifier] | None = None
    tags: list[str] = []
    labels: dict[str, str] = {}
    windows: list[Window] | None = None
    deployer: Identifier | None = None
    target: dict[str, Any] = {}
    url: str | None = None
    config: dict[str, dict[str, Any]] = {}


class Customer(Strict):
    """``customers/<id>.yaml``: one customer, its facts, windows and instances."""

    id: Identifier
    name: str | None = None
    tier: str | None = None
    region: str | None = None
    tags: list[str] = []
    labels: dict[str, str] = {}
    timezone: str = "UTC"
    windows: list[Window] = []
    contacts: list[str] = []
    notes: str = ""
    instances: dict[Identifier, Instance] = Field(min_length=1)
    config: dict[str, dict[str, Any]] = {}

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value)


def is_identifier(value: str) -> bool:
    """True when ``value`` is a valid id (see :data:`Identifier`)."""
    return bool(_ID.match(value))
