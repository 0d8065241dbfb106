"""The benchmark flag, defined for Rollwave and for each peer SDK, plus the shared contexts.

The flag ``new-checkout``: one targeting rule (customer in acme, globex → on) and a 20 %
rollout of everyone else, bucketed by the user key. Every peer is configured offline (local
file or bootstrap document, no network beyond loopback) as its documentation describes.

Each ``setup_*`` returns a :class:`Peer` whose ``native(i)``/``of(i)`` evaluate context ``i``
(contexts are built in advance, in each SDK's own context type, outside the timed loop).
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

KEY = "new-checkout"
TARGETED = ["acme", "globex"]
OTHERS = ["initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "cyberdyne", "soylent",
          "wonka", "oscorp", "aperture", "monarch", "massive", "dunder", "vandelay", "pied",
          "gringotts", "duff"]
N_CONTEXTS = 10_000
ROLLOUT = 20

logging.getLogger("UnleashClient").setLevel(logging.CRITICAL)


def make_contexts(seed: int = 42) -> list[dict[str, str]]:
    """10,000 distinct contexts: ~10 % targeted customers, the rest in the rollout."""
    rng = random.Random(seed)
    out = []
    for i in range(N_CONTEXTS):
        customer = rng.choice(TARGETED) if rng.random() < 0.1 else rng.choice(OTHERS)
        out.append({"key": f"user-{i:05d}-{rng.randrange(10**6)}", "customer": customer})
    return out


@dataclass
class Peer:
    """One flag system, its version, and evaluation callables by context index."""

    name: str
    version: str
    native: Callable[[int], Any] | None = None
    of: Callable[[int], Any] | None = None
    native_loop: Callable[[], None] | None = None
    of_loop: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


def _version(*dists: str) -> str:
    parts = []
    for dist in dists:
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} ?")
    return ", ".join(parts)


def _of_client(provider: Any, domain: str) -> Any:
    from openfeature import api
    api.set_provider(provider, domain=domain)
    return api.get_client(domain=domain)


def _of_loop(of_client: Any, key: str, contexts: list[Any]) -> Callable[[], None]:
    """A tight loop over every context through ``client.get_boolean_value``."""
    def run() -> None:
        get = of_client.get_boolean_value
        for context in contexts:
            get(key, False, context)
    return run


def _of_contexts(contexts: list[dict[str, str]]) -> list[Any]:
    from openfeature.evaluation_context import EvaluationContext
    return [EvaluationContext(c["key"], {"customer": c["customer"]}) for c in contexts]


# -- Rollwave -------------------------------------------------------------------------------------

def rollwave_flag() -> dict[str, Any]:
    """The benchmark flag in Rollwave's JSON form."""
    return {"key": KEY, "enabled": True,
            "rules": [{"id": "targeted", "when": [
                {"attribute": "customer", "op": "in", "values": TARGETED}], "serve": True}],
            "fallthrough": {"split": {"true": ROLLOUT, "false": 100 - ROLLOUT}}}


def setup_rollwave(contexts: list[dict[str, str]]) -> Peer:
    from rollwave.flags.model import Flag, FlagSet
    from rollwave.flags.snapshots import snapshot_document
    from rollwave.sdk.client import RollwaveClient
    from rollwave.sdk.openfeature import RollwaveProvider

    flagset = FlagSet(flags={KEY: Flag.model_validate(rollwave_flag())})
    client = RollwaveClient(bootstrap=snapshot_document(flagset, None, 1))
    ours = [{"targetingKey": c["key"], "customer": c["customer"]} for c in contexts]
    of_client = _of_client(RollwaveProvider(client), "rollwave")
    of_ctx = _of_contexts(contexts)
    boolean = client.boolean

    def native_loop() -> None:
        evaluate = client.boolean
        for context in ours:
            evaluate(KEY, context, False)
    return Peer("rollwave", _version("rollwave", "openfeature-sdk"),
                native=lambda i: boolean(KEY, ours[i], False),
                of=lambda i: of_client.get_boolean_value(KEY, False, of_ctx[i]),
                native_loop=native_loop, of_loop=_of_loop(of_client, KEY, of_ctx))


# -- GrowthBook -----------------------------------------------------------------------------------

GROWTHBOOK_FEATURES = {KEY: {"defaultValue": False, "rules": [
    {"id": "targeted", "condition": {"customer": {"$in": TARGETED}}, "force": True},
    {"id": "rollout", "force": True, "coverage": ROLLOUT / 100, "hashAttribute": "id"},
]}}


class _FeaturesHandler(BaseHTTPRequestHandler):
    """Serves GrowthBook's SDK payload on loopback for the OpenFeature provider."""

    def do_GET(self) -> None:
        body = json.dumps({"status": 200, "features": GROWTHBOOK_FEATURES,
                           "dateUpdated": "2026-01-01T00:00:00Z"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def setup_growthbook(contexts: list[dict[str, str]]) -> Peer:
    from growthbook import GrowthBook

    gb = GrowthBook(features=GROWTHBOOK_FEATURES)
    attrs = [{"id": c["key"], "customer": c["customer"]} for c in contexts]

    def native(i: int) -> bool:
        gb.set_attributes(attrs[i])
        return bool(gb.is_on(KEY))

    def native_loop() -> None:
        set_attributes, is_on = gb.set_attributes, gb.is_on
        for attributes in attrs:
            set_attributes(attributes)
            is_on(KEY)

    peer = Peer("growthbook", _version("growthbook", "growthbook-openfeature-provider"),
                native=native, native_loop=native_loop)
    try:
        from growthbook_openfeature_provider import GrowthBookProvider, GrowthBookProviderOptions
        server = ThreadingHTTPServer(("127.0.0.1", 0), _FeaturesHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        provider = GrowthBookProvider(GrowthBookProviderOptions(
            api_host=f"http://127.0.0.1:{server.server_address[1]}", client_key="bench",
            cache_ttl=3600))
        provider.initialize_sync()  # its initialize() is a coroutine the sync SDK never awaits
        of_client = _of_client(provider, "growthbook")
        from openfeature.evaluation_context import EvaluationContext
        of_ctx = [EvaluationContext(c["key"], {"id": c["key"], "customer": c["customer"]})
                  for c in contexts]
        peer.of = lambda i: of_client.get_boolean_value(KEY, False, of_ctx[i])
        peer.of_loop = _of_loop(of_client, KEY, of_ctx)
        peer.close = server.shutdown
    except Exception as exc:  # reported, not hidden
        peer.notes.append(f"OpenFeature provider unavailable: {type(exc).__name__}: {exc}")
    return peer


# -- Flagsmith ------------------------------------------------------------------------------------

def flagsmith_document() -> dict[str, Any]:
    feature = {"id": 1, "name": "new_checkout", "type": "STANDARD"}

    def state(state_id: int, enabled: bool, priority: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"feature": feature, "enabled": enabled,
                               "feature_state_value": None, "django_id": state_id,
                               "featurestate_uuid": str(uuid.UUID(int=state_id)),
                               "multivariate_feature_state_values": []}
        if priority is not None:
            out["feature_segment"] = {"priority": priority}
        return out

    def rule(condition: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "ALL", "conditions": [], "rules": [
            {"type": "ANY", "conditions": [condition], "rules": []}]}]

    return {"api_key": "bench", "name": "bench", "feature_states": [state(1, False)],
            "project": {"id": 1, "name": "bench", "segments": [
                {"id": 1, "name": "targeted", "feature_states": [state(2, True, 0)],
                 "rules": rule({"property_": "customer", "operator": "IN",
                                "value": ",".join(TARGETED)})},
                {"id": 2, "name": "rollout", "feature_states": [state(3, True, 1)],
                 "rules": rule({"property_": "", "operator": "PERCENTAGE_SPLIT",
                                "value": str(ROLLOUT)})},
            ]},
            "identity_overrides": []}


def setup_flagsmith(contexts: list[dict[str, str]]) -> Peer:
    from flagsmith import Flagsmith
    from flagsmith.offline_handlers import LocalFileHandler

    path = Path(tempfile.mkdtemp()) / "environment.json"
    path.write_text(json.dumps(flagsmith_document()))
    fs = Flagsmith(offline_mode=True, offline_handler=LocalFileHandler(str(path)))
    traits = [(c["key"], {"customer": c["customer"]}) for c in contexts]

    def native(i: int) -> bool:
        key, trait = traits[i]
        return bool(fs.get_identity_flags(key, traits=trait).is_feature_enabled("new_checkout"))

    def native_loop() -> None:
        get = fs.get_identity_flags
        for key, trait in traits:
            get(key, traits=trait).is_feature_enabled("new_checkout")

    peer = Peer("flagsmith", _version("flagsmith", "openfeature-provider-flagsmith"),
                native=native, native_loop=native_loop,
                close=getattr(fs, "close", lambda: None))
    try:
        from openfeature_flagsmith.provider import FlagsmithProvider
        of_client = _of_client(FlagsmithProvider(fs), "flagsmith")
        of_ctx = _of_contexts(contexts)
        peer.of = lambda i: of_client.get_boolean_value("new_checkout", False, of_ctx[i])
        peer.of_loop = _of_loop(of_client, "new_checkout", of_ctx)
    except Exception as exc:
        peer.notes.append(f"OpenFeature provider unavailable: {type(exc).__name__}: {exc}")
    return peer


# -- LaunchDarkly ---------------------------------------------------------------------------------

def launchdarkly_flags() -> dict[str, Any]:
    weight = ROLLOUT * 1000
    return {"flags": {KEY: {
        "key": KEY, "on": True, "variations": [True, False], "offVariation": 1, "version": 1,
        "salt": "bench", "targets": [], "prerequisites": [],
        "rules": [{"id": "targeted", "variation": 0, "clauses": [
            {"attribute": "customer", "op": "in", "values": TARGETED, "negate": False}]}],
        "fallthrough": {"rollout": {"variations": [
            {"variation": 0, "weight": weight}, {"variation": 1, "weight": 100_000 - weight}]}},
    }}}


def setup_launchdarkly(contexts: list[dict[str, str]]) -> Peer:
    import ldclient
    from ldclient import Context
    from ldclient.config import Config
    from ldclient.integrations import Files

    path = Path(tempfile.mkdtemp()) / "flags.json"
    path.write_text(json.dumps(launchdarkly_flags()))
    config = Config(sdk_key="bench", update_processor_class=Files.new_data_source(
        paths=[str(path)]), send_events=False, diagnostic_opt_out=True)
    client = ldclient.LDClient(config=config, start_wait=5)
    ld_ctx = [Context.builder(c["key"]).set("customer", c["customer"]).build() for c in contexts]
    def native_loop() -> None:
        variation = client.variation
        for context in ld_ctx:
            variation(KEY, context, False)

    peer = Peer("launchdarkly", _version("launchdarkly-server-sdk",
                                         "launchdarkly-openfeature-server"),
                native=lambda i: client.variation(KEY, ld_ctx[i], False),
                native_loop=native_loop, close=client.close)
    try:
        from ld_openfeature import LaunchDarklyProvider
        of_config = Config(sdk_key="bench", update_processor_class=Files.new_data_source(
            paths=[str(path)]), send_events=False, diagnostic_opt_out=True)
        provider = LaunchDarklyProvider(of_config, start_wait=5)
        of_client = _of_client(provider, "launchdarkly")
        from openfeature.evaluation_context import EvaluationContext
        of_ctx = [EvaluationContext(c["key"], {"kind": "user", "customer": c["customer"]})
                  for c in contexts]
        peer.of = lambda i: of_client.get_boolean_value(KEY, False, of_ctx[i])
        peer.of_loop = _of_loop(of_client, KEY, of_ctx)
    except Exception as exc:
        peer.notes.append(f"OpenFeature provider unavailable: {type(exc).__name__}: {exc}")
    return peer


# -- Unleash --------------------------------------------------------------------------------------

def unleash_features() -> dict[str, Any]:
    return {"version": 1, "features": [{
        "name": KEY, "enabled": True, "type": "release", "variants": [],
        "strategies": [
            {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "default",
                                                       "groupId": KEY},
             "constraints": [{"contextName": "customer", "operator": "IN",
                              "values": TARGETED}]},
            {"name": "flexibleRollout", "parameters": {"rollout": str(ROLLOUT),
                                                       "stickiness": "userId", "groupId": KEY}},
        ]}]}


def setup_unleash(contexts: list[dict[str, str]]) -> Peer:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    cache = FileCache("rollwave-bench", directory=tempfile.mkdtemp())
    cache.bootstrap_from_dict(unleash_features())
    client = UnleashClient(url="http://127.0.0.1:9/api", app_name="bench", cache=cache,
                           disable_metrics=True, disable_registration=True,
                           refresh_interval=3600)
    client.initialize_client(fetch_toggles=False)
    un_ctx = [{"userId": c["key"], "properties": {"customer": c["customer"]}} for c in contexts]
    def native_loop() -> None:
        is_enabled = client.is_enabled
        for context in un_ctx:
            is_enabled(KEY, context)

    peer = Peer("unleash", _version("UnleashClient", "openfeature-provider-unleash"),
                native=lambda i: client.is_enabled(KEY, un_ctx[i]), native_loop=native_loop,
                close=client.destroy)
    try:
        from openfeature.contrib.provider.unleash import UnleashProvider
        cache2 = FileCache("rollwave-bench-of", directory=tempfile.mkdtemp())
        cache2.bootstrap_from_dict(unleash_features())
        provider = UnleashProvider(url="http://127.0.0.1:9/api", app_name="bench-of",
                                   api_token="x", fetch_toggles=False, cache=cache2)
        of_client = _of_client(provider, "unleash")
        from openfeature.evaluation_context import EvaluationContext
        of_ctx = [EvaluationContext(c["key"], {"userId": c["key"], "customer": c["customer"]})
                  for c in contexts]
        peer.of = lambda i: of_client.get_boolean_value(KEY, False, of_ctx[i])
        peer.of_loop = _of_loop(of_client, KEY, of_ctx)
        previous = peer.close

        def close_both() -> None:
            previous()
            provider.shutdown()
        peer.close = close_both
    except Exception as exc:
        peer.notes.append(f"OpenFeature provider unavailable: {type(exc).__name__}: {exc}")
    return peer


# -- flagd ----------------------------------------------------------------------------------------

def flagd_document() -> dict[str, Any]:
    return {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {KEY: {
        "state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off",
        "targeting": {"if": [{"in": [{"var": "customer"}, TARGETED]}, "on",
                             {"fractional": [["on", ROLLOUT], ["off", 100 - ROLLOUT]]}]}}}}


def setup_flagd(contexts: list[dict[str, str]]) -> Peer:
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    path = Path(tempfile.mkdtemp()) / "flags.json"
    path.write_text(json.dumps(flagd_document()))
    provider = FlagdProvider(resolver_type=ResolverType.IN_PROCESS,
                             offline_flag_source_path=str(path))
    of_client = _of_client(provider, "flagd")
    of_ctx = _of_contexts(contexts)
    return Peer("flagd", _version("openfeature-provider-flagd", "openfeature-flagd-core"),
                of=lambda i: of_client.get_boolean_value(KEY, False, of_ctx[i]),
                of_loop=_of_loop(of_client, KEY, of_ctx),
                notes=["no native Python SDK: flagd is evaluated through OpenFeature only"],
                close=provider.shutdown)


def setup_floor(contexts: list[dict[str, str]]) -> Peer:
    """Not a peer: a provider that returns a constant, i.e. the OpenFeature SDK's own cost."""
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider import AbstractProvider, Metadata

    answer = FlagResolutionDetails(value=True, reason=Reason.STATIC, variant="on")

    class Constant(AbstractProvider):
        def get_metadata(self) -> Metadata:
            return Metadata(name="constant")

        def get_provider_hooks(self) -> list[Any]:
            return []

        def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                    evaluation_context: Any = None) -> Any:
            return answer

        resolve_string_details = resolve_integer_details = resolve_boolean_details
        resolve_float_details = resolve_object_details = resolve_boolean_details

    of_client = _of_client(Constant(), "constant")
    of_ctx = _of_contexts(contexts)
    return Peer("(OpenFeature SDK floor)", _version("openfeature-sdk"),
                of_loop=_of_loop(of_client, KEY, of_ctx),
                notes=["a provider returning a constant: the most any provider can reach"])


SETUPS: dict[str, Callable[[list[dict[str, str]]], Peer]] = {
    "floor": setup_floor,
    "rollwave": setup_rollwave, "growthbook": setup_growthbook, "flagsmith": setup_flagsmith,
    "launchdarkly": setup_launchdarkly, "unleash": setup_unleash, "flagd": setup_flagd,
}
