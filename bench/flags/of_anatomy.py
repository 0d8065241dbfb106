"""Where the time of an OpenFeature evaluation goes, and which supported usages are cheaper.

Run in the benchmark venv (same openfeature-sdk as the peers) and, for comparison, in the
project venv (a newer openfeature-sdk)::

    bench/.venv-flags/bin/python bench/flags/of_anatomy.py --rounds 7
    .venv/bin/python bench/flags/of_anatomy.py --rounds 7

It times, over the benchmark's 10,000 contexts (best of N passes, µs per evaluation):

* the Rollwave provider and a constant provider (the SDK's floor) through the documented
  client calls: ``get_boolean_value`` and ``get_boolean_details``, with the context per call,
  and with the context set as the *transaction context* (``api.set_transaction_context``, the
  documented per-request usage) and no invocation context;
* the same with the SDK's steps switched off one at a time by monkeypatching (diagnosis only,
  never a supported usage): the evaluation-context merge, the rest of the per-call set-up,
  the (empty) hook runners, the provider-status check, the result type check;
* the provider's ``resolve_boolean_details`` called directly (what the provider itself costs).

Nothing is cached per context; every pass evaluates all 10,000 contexts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers
from openfeature import api
from openfeature import client as of_client_module
from openfeature.evaluation_context import EvaluationContext


@contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print a cProfile breakdown")
    args = parser.parse_args()
    contexts = peers.make_contexts()
    n = len(contexts)
    rollwave = peers.setup_rollwave(contexts)
    floor = peers.setup_floor(contexts)
    del rollwave, floor  # the clients live on in the API under their domains
    of_ctx = peers._of_contexts(contexts)
    key = peers.KEY
    clients = {"rollwave": api.get_client("rollwave"), "floor": api.get_client("constant")}
    provider = api.get_client("rollwave").provider
    print(f"# openfeature-sdk {metadata.version('openfeature-sdk')}, python "
          f"{sys.version.split()[0]}, {n:,} contexts, best of {args.rounds}")

    def value_loop(client: Any) -> Callable[[], None]:
        def run() -> None:
            get = client.get_boolean_value
            for context in of_ctx:
                get(key, False, context)
        return run

    def details_loop(client: Any) -> Callable[[], None]:
        def run() -> None:
            get = client.get_boolean_details
            for context in of_ctx:
                get(key, False, context)
        return run

    def transaction_loop(client: Any) -> Callable[[], None]:
        def run() -> None:
            get = client.get_boolean_value
            set_tx = api.set_transaction_context
            for context in of_ctx:
                set_tx(context)
                get(key, False)
            set_tx(EvaluationContext())
        return run

    def provider_loop() -> None:
        resolve = provider.resolve_boolean_details
        for context in of_ctx:
            resolve(key, False, context)

    loops: list[tuple[str, str, Callable[[], None]]] = []
    for name, client in clients.items():
        loops.append((name, "get_boolean_value(key, default, ctx)", value_loop(client)))
        loops.append((name, "get_boolean_details(key, default, ctx)", details_loop(client)))
        loops.append((name, "set_transaction_context(ctx); get_boolean_value(key, default)",
                      transaction_loop(client)))
    loops.append(("rollwave", "provider.resolve_boolean_details directly (not an app API)",
                  provider_loop))

    # Diagnosis: switch SDK steps off one at a time (never a supported usage; valid only
    # because no hooks are registered anywhere, so no hook context is ever built).
    from itertools import chain

    from openfeature.flag_evaluation import FlagEvaluationOptions
    from openfeature.hook import get_hooks

    klass = of_client_module.OpenFeatureClient

    def establish_without_merge(self: Any, flag_type: Any, flag_key: Any, default: Any,
                                evaluation_context: Any, options: Any) -> Any:
        """The SDK's own steps, minus merging API, transaction and client contexts."""
        if evaluation_context is None:
            evaluation_context = EvaluationContext()
        if options is None:
            options = FlagEvaluationOptions()
        provider = self.provider
        self.get_metadata()
        provider.get_metadata()
        hooks = [(hook, None) for hook in chain(get_hooks(), self.hooks, options.hooks,
                                                 provider.get_provider_hooks())]
        reverse = hooks.copy()
        reverse.reverse()
        return provider, options.hook_hints, hooks, reverse, evaluation_context

    def establish_minimal(self: Any, flag_type: Any, flag_key: Any, default: Any,
                          evaluation_context: Any, options: Any) -> Any:
        return self.provider, {}, [], [], evaluation_context

    def no_hooks(*args: Any, **kwargs: Any) -> Any:
        return EvaluationContext() if not args or args[0] is None else None

    def before_nothing(flag_type: Any, hooks: Any, hints: Any) -> Any:
        return EvaluationContext()

    diagnostics = [
        ("merging the API/transaction/client/invocation contexts skipped", klass,
         "_establish_hooks_and_provider", establish_without_merge),
        ("all of _establish_hooks_and_provider skipped (merge, options, metadata, hook lists)",
         klass, "_establish_hooks_and_provider", establish_minimal),
        ("empty before hooks skipped", of_client_module, "before_hooks", before_nothing),
        ("empty after hooks skipped", of_client_module, "after_hooks", no_hooks),
        ("empty finally hooks skipped", of_client_module, "after_all_hooks", no_hooks),
        ("provider-status check skipped", klass, "_assert_provider_status", lambda self: None),
        ("result type check skipped", of_client_module, "_typecheck_flag_value",
         lambda value, flag_type: None),
    ]

    def with_patch(obj: Any, attr: str, replacement: Any,
                   loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with patched(obj, attr, replacement):
                loop()
        return run

    for label, obj, attr, replacement in diagnostics:
        for name, client in clients.items():
            loops.append((name, f"[diagnosis] {label}",
                          with_patch(obj, attr, replacement, value_loop(client))))

    timings: dict[int, list[float]] = {i: [] for i in range(len(loops))}
    for _ in range(args.rounds):  # round-robin: machine noise hits every variant alike
        for index, (_name, _call, loop) in enumerate(loops):
            gc.collect()
            start = time.perf_counter()
            loop()
            timings[index].append(time.perf_counter() - start)
    rows = [(name, call, min(timings[i]) / n * 1e6) for i, (name, call, _) in enumerate(loops)]

    width = max(len(r[1]) for r in rows)
    print(f"\n| provider | call | µs/eval | evals/s |\n|---|{'-' * 5}|---:|---:|")
    for name, call, micros in rows:
        print(f"| {name} | {call:{width}} | {micros:.2f} | {1e6 / micros:,.0f} |")

    if args.profile:
        for name, client in clients.items():
            profiler = cProfile.Profile()
            profiler.enable()
            value_loop(client)()
            profiler.disable()
            print(f"\n# cProfile, {name}, one pass (tottime, top 18)")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
