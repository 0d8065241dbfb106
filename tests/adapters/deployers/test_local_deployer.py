"""The ``local`` deployer with a fake service: detached processes, level-triggered state, safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollwave.adapters.deployers import DeployerEnvironment, registry
from rollwave.adapters.deployers.local import (
    MARKER,
    LocalDeployer,
    LocalOptions,
    is_ours,
    proc_start,
    running,
)
from rollwave.core.fleet import FleetInstance
from rollwave.core.hashing import config_hash
from rollwave.core.model import LocalRun, Service
from rollwave.errors import DeployError
from rollwave.ports.deployer import DesiredState

from .conftest import free_port, make_context, make_instance

pytestmark = pytest.mark.e2e

FAKE_ARGV = ["{python}", "{script}", "--port", "{port}", "--version", "{version}",
             "--config", "{config_file}", "--instance", "{instance}"]


def fake_services(script: Path, names: Sequence[str] = ("api", "worker"),
                  start_timeout: float = 10.0, extra: Sequence[str] = ()) -> dict[str, Service]:
    argv = [str(script) if a == "{script}" else a for a in FAKE_ARGV] + list(extra)
    run = LocalRun(command=argv, start_timeout=start_timeout)
    return {name: Service(local=run) for name in names}


def local_deployer(state: Path, services: dict[str, Service], **options: Any) -> LocalDeployer:
    made = registry.create("local", {"kind": "local", **options},
                           DeployerEnvironment(state_dir=state, services=services))
    assert isinstance(made, LocalDeployer)
    return made


def desired(version: str = "1.0", config: dict[str, Any] | None = None,
            services: Sequence[str] = ("api",)) -> DesiredState:
    config = {"greeting": "hello"} if config is None else config
    return DesiredState(versions=dict.fromkeys(services, version),
                        configs=dict.fromkeys(services, config),
                        config_hashes=dict.fromkeys(services, config_hash(config)))


def version_of(url: str) -> dict[str, Any]:
    body = httpx.get(url + "/version", timeout=2).json()
    assert isinstance(body, dict)
    return body


@pytest.fixture
def setup(tmp_path: Path, fake_service: Path, reaper: list[int]
          ) -> tuple[LocalDeployer, FleetInstance]:
    d = local_deployer(tmp_path / "state", fake_services(fake_service))
    return d, make_instance(target={"port": free_port()})


# --- deploy, idempotence, upgrade ------------------------------------------------------------


def test_deploy_starts_a_process_that_reports_the_desired_state(
        setup: tuple[LocalDeployer, FleetInstance], tmp_path: Path) -> None:
    d, inst = setup
    want = desired()
    assert d.actual(inst, ["api"]).versions == {}
    ctx, sink = make_context(tmp_path)
    result = d.deploy(inst, want, ctx)
    assert result.ok, result
    assert "ready on port" in result.message
    assert d.actual(inst, ["api"]).satisfies(want)
    url = d.endpoint(inst, "api")
    assert url == f"http://127.0.0.1:{inst.target['port']}"
    assert httpx.get(f"{url}/health", timeout=2).status_code == 200
    folder = tmp_path / "state" / "instances" / "acme" / "prod" / "api"
    assert json.loads((folder / "config.json").read_text()) == {"greeting": "hello"}
    assert oct((folder / "config.json").stat().st_mode & 0o777) == "0o600"
    state = json.loads((folder / "state.json").read_text())
    assert {"version", "config_hash", "pid", "port", "started_at"} <= set(state)
    assert state["version"] == "1.0"
    assert state["config_hash"] == want.config_hashes["api"]
    assert int((folder / "pid").read_text()) == state["pid"] == version_of(url)["pid"]
    assert "listening" in (folder / "process.log").read_text()
    assert any("starting 1.0" in line for line in sink.lines)


def test_repeated_deploy_is_skipped_and_changes_restart(
        setup: tuple[LocalDeployer, FleetInstance], tmp_path: Path) -> None:
    d, inst = setup
    url = d.endpoint(inst, "api")
    assert url
    assert d.deploy(inst, desired("1.0"), make_context(tmp_path)[0]).ok
    first = version_of(url)["pid"]
    again = d.deploy(inst, desired("1.0"), make_context(tmp_path)[0])
    assert again.ok
    assert "already" in again.message
    assert version_of(url)["pid"] == first

    assert d.deploy(inst, desired("1.1"), make_context(tmp_path)[0]).ok
    second = version_of(url)
    assert second["version"] == "1.1"
    assert second["pid"] != first
    assert not running(first)

    new_config = {"greeting": "hi"}
    assert d.deploy(inst, desired("1.1", new_config), make_context(tmp_path)[0]).ok
    third = version_of(url)
    assert third["config_hash"] == config_hash(new_config)
    assert third["pid"] != second["pid"]


def test_two_services_count_ports_up_from_target_port(
        setup: tuple[LocalDeployer, FleetInstance], tmp_path: Path) -> None:
    d, _ = setup
    base = free_port()
    inst = make_instance(services=("api", "worker"), target={"port": base})
    want = desired(services=("api", "worker"))
    assert d.deploy(inst, want, make_context(tmp_path)[0]).ok
    assert d.endpoint(inst, "worker") == f"http://127.0.0.1:{base + 1}"
    assert version_of(f"http://127.0.0.1:{base + 1}")["version"] == "1.0"
    assert d.actual(inst, ["api", "worker"]).satisfies(want)
    d.stop(inst)
    assert d.actual(inst, ["api", "worker"]).versions == {}


def test_ports_map_and_port_errors(setup: tuple[LocalDeployer, FleetInstance]) -> None:
    d, _ = setup
    mapped = make_instance(services=("api", "worker"), target={"port": 9000,
                                                               "ports": {"worker": 9100}})
    assert d.endpoint(mapped, "api") == "http://127.0.0.1:9000"
    assert d.endpoint(mapped, "worker") == "http://127.0.0.1:9100"
    assert d.endpoint(make_instance(), "api") is None
    with pytest.raises(DeployError, match="no port") as caught:
        d.actual(make_instance(), ["api"])
    assert "target" in (caught.value.hint or "")
    with pytest.raises(DeployError, match="invalid port"):
        d.deploy(make_instance(target={"port": "eighty"}), desired(),
                 make_context(Path("/tmp"))[0])
    with pytest.raises(DeployError, match="invalid port"):
        d.actual(make_instance(target={"port": 70000}), ["api"])


def test_unknown_placeholder_in_the_service_command(tmp_path: Path, reaper: list[int]) -> None:
    services = {"api": Service(local=LocalRun(command=["{python}", "--port", "{prot}"]))}
    d = local_deployer(tmp_path, services)
    with pytest.raises(DeployError, match=r"\{prot\}") as caught:
        d.deploy(make_instance(target={"port": free_port()}), desired(),
                 make_context(tmp_path)[0])
    assert "{port}" in caught.value.message


def test_parallel_deploys_of_many_instances(setup: tuple[LocalDeployer, FleetInstance],
                                            tmp_path: Path) -> None:
    d, _ = setup
    instances = [make_instance(f"c{i}", target={"port": free_port()}) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: d.deploy(i, desired(), make_context(tmp_path)[0]),
                                instances))
    assert all(r.ok for r in results), results
    assert all(d.actual(i, ["api"]).satisfies(desired()) for i in instances)
    for inst in instances:
        d.stop(inst)


# --- failures --------------------------------------------------------------------------------


def test_crash_on_start_fails_fast_with_the_log_tail(
        setup: tuple[LocalDeployer, FleetInstance], tmp_path: Path) -> None:
    d, inst = setup
    ctx, sink = make_context(tmp_path)
    started = time.monotonic()
    result = d.deploy(inst, desired(config={"fake": {"crash": True}}), ctx)
    assert time.monotonic() - started < 5  # start_timeout is 10 s
    assert not result.ok
    assert "exited with code 3" in result.message
    assert "boom" in result.message
    assert "boom, crashing on start" in result.log
    assert any("exited with code 3" in line for line in sink.lines)
    assert d.actual(inst, ["api"]).versions == {}


def test_start_timeout_stops_the_slow_process(tmp_path: Path, fake_service: Path,
                                              reaper: list[int]) -> None:
    d = local_deployer(tmp_path / "state", fake_services(fake_service, start_timeout=1.0))
    inst = make_instance(target={"port": free_port()})
    result = d.deploy(inst, desired(config={"fake": {"start_delay": 60}}),
                      make_context(tmp_path)[0])
    assert not result.ok
    assert "did not answer" in result.message
    state = json.loads((tmp_path / "state/instances/acme/prod/api/state.json").read_text())
    assert not running(state["pid"])


def test_process_ignoring_sigterm_is_killed(tmp_path: Path, fake_service: Path,
                                            reaper: list[int]) -> None:
    d = local_deployer(tmp_path / "state", fake_services(fake_service), stop_timeout=0.5)
    inst = make_instance(target={"port": free_port()})
    assert d.deploy(inst, desired(config={"fake": {"ignore_term": True}}),
                    make_context(tmp_path)[0]).ok
    old = version_of(str(d.endpoint(inst, "api")))["pid"]
    assert d.deploy(inst, desired("2.0"), make_context(tmp_path)[0]).ok
    assert not running(old)


def test_port_taken_by_a_foreign_process_fails_clearly(
        setup: tuple[LocalDeployer, FleetInstance], tmp_path: Path) -> None:
    d, inst = setup
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", inst.target["port"]))
        sock.listen()
        result = d.deploy(inst, desired(), make_context(tmp_path)[0])
    assert not result.ok
    assert "in use by a process this deployer did not start" in result.message


def test_missing_program_is_a_failed_result(tmp_path: Path) -> None:
    services = {"api": Service(local=LocalRun(command=["/nonexistent/service", "{port}"]))}
    d = local_deployer(tmp_path, services)
    result = d.deploy(make_instance(target={"port": free_port()}), desired(),
                      make_context(tmp_path)[0])
    assert not result.ok
    assert "cannot start api" in result.message


def test_log_lines_are_redacted(tmp_path: Path, fake_service: Path, reaper: list[int]) -> None:
    services = fake_services(fake_service, extra=())
    d = local_deployer(tmp_path / "state", services)
    inst = make_instance(target={"port": free_port()})
    ctx, sink = make_context(tmp_path, redact=["sekrit-token-value"])
    result = d.deploy(inst, desired(config={"fake": {"say": "token sekrit-token-value",
                                                     "crash": True}}), ctx)
    assert not result.ok
    for text in (result.message, result.log, sink.text):
        assert "sekrit-token-value" not in text
    assert "token ***" in result.log


# --- processes outlive the orchestrator; stale pids ------------------------------------------


def test_process_outlives_the_deployer_object(setup: tuple[LocalDeployer, FleetInstance],
                                              tmp_path: Path, fake_service: Path) -> None:
    d, inst = setup
    assert d.deploy(inst, desired(), make_context(tmp_path)[0]).ok
    pid = version_of(str(d.endpoint(inst, "api")))["pid"]
    del d
    fresh = local_deployer(tmp_path / "state", fake_services(fake_service))
    assert fresh.actual(inst, ["api"]).satisfies(desired())
    assert running(pid)
    fresh.stop(inst)
    assert not running(pid)
    assert fresh.actual(inst, ["api"]).versions == {}


ORCHESTRATOR = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    from rollwave.adapters.deployers import DeployerEnvironment, registry
    from rollwave.core.model import LocalRun, Service
    from rollwave.ports.deployer import DeployContext, DesiredState
    from conftest import make_instance  # this directory is on PYTHONPATH

    state, argv, port, version, config = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), \\
        sys.argv[4], json.loads(sys.argv[5])
    services = {"api": Service(local=LocalRun(command=argv))}
    d = registry.create("local", {}, DeployerEnvironment(Path(state), services))
    inst = make_instance(target={"port": port})
    ctx = DeployContext(state_dir=Path(state), log=lambda line: print(line, flush=True))
    result = d.deploy(inst, DesiredState({"api": version}, {"api": config}), ctx)
    print("RESULT", result.ok, result.message, flush=True)
    time.sleep(600)
''')


def start_orchestrator(tmp_path: Path, fake_service: Path, port: int, version: str,
                       config: dict[str, Any]) -> subprocess.Popen[str]:
    script = tmp_path / "orchestrator.py"
    script.write_text(ORCHESTRATOR)
    argv = [str(fake_service) if a == "{script}" else a for a in FAKE_ARGV]
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "state"), json.dumps(argv), str(port),
         version, json.dumps(config)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 20) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{needle!r} not seen; output: {''.join(seen)}")


def test_services_survive_sigkill_of_the_orchestrator(tmp_path: Path, fake_service: Path,
                                                      reaper: list[int]) -> None:
    port = free_port()
    orchestrator = start_orchestrator(tmp_path, fake_service, port, "1.0", {"a": 1})
    try:
        assert "RESULT True" in read_until(orchestrator, "RESULT")
    finally:
        orchestrator.send_signal(signal.SIGKILL)
        orchestrator.wait()
    assert version_of(f"http://127.0.0.1:{port}")["version"] == "1.0"
    d = local_deployer(tmp_path / "state", fake_services(fake_service))
    inst = make_instance(target={"port": port})
    want = DesiredState({"api": "1.0"}, {"api": {"a": 1}}, {"api": config_hash({"a": 1})})
    assert d.actual(inst, ["api"]).satisfies(want)
    result = d.deploy(inst, want, make_context(tmp_path)[0])
    assert "already" in result.message
    d.stop(inst)


def test_deploy_interrupted_by_sigkill_can_simply_be_repeated(
        tmp_path: Path, fake_service: Path, reaper: list[int]) -> None:
    port = free_port()
    config = {"fake": {"start_delay": 1.5}}
    orchestrator = start_orchestrator(tmp_path, fake_service, port, "1.0", config)
    try:
        read_until(orchestrator, "starting 1.0")
        time.sleep(0.3)  # the service process exists, is recorded, and is not ready yet
    finally:
        orchestrator.send_signal(signal.SIGKILL)
        orchestrator.wait()
    d = local_deployer(tmp_path / "state", fake_services(fake_service))
    inst = make_instance(target={"port": port})
    want = DesiredState({"api": "1.0"}, {"api": config}, {"api": config_hash(config)})
    result = d.deploy(inst, want, make_context(tmp_path)[0])
    assert result.ok, result
    assert d.actual(inst, ["api"]).satisfies(want)
    d.stop(inst)


def test_stale_pid_of_another_process_is_never_signalled(
        setup: tuple[LocalDeployer, FleetInstance], tmp_path: Path, reaper: list[int]) -> None:
    d, inst = setup
    assert d.deploy(inst, desired("1.0"), make_context(tmp_path)[0]).ok
    folder = tmp_path / "state" / "instances" / "acme" / "prod" / "api"
    state = json.loads((folder / "state.json").read_text())
    d.stop(inst)
    # an unrelated session leader now holds a pid that a stale state file points at
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    reaper.append(bystander.pid)
    stale = {**state, "pid": bystander.pid}
    (folder / "state.json").write_text(json.dumps(stale))
    (folder / "pid").write_text(f"{bystander.pid}\n")
    assert not is_ours(bystander.pid, state["proc_start"])
    assert is_ours(bystander.pid, proc_start(bystander.pid))
    assert d.actual(inst, ["api"]).versions == {}
    ctx, sink = make_context(tmp_path)
    assert d.deploy(inst, desired("2.0"), ctx).ok
    assert bystander.poll() is None
    assert any("not signalling" in line for line in sink.lines)
    d.stop(inst)
    assert bystander.poll() is None
    bystander.kill()
    bystander.wait()


def test_leftover_process_without_state_is_found_by_its_marker(
        setup: tuple[LocalDeployer, FleetInstance], tmp_path: Path, fake_service: Path,
        reaper: list[int]) -> None:
    d, inst = setup
    folder = tmp_path / "state" / "instances" / "acme" / "prod" / "api"
    folder.mkdir(parents=True)
    port = inst.target["port"]
    # as if the orchestrator died between starting the process and recording it
    orphan = subprocess.Popen(
        [sys.executable, str(fake_service), "--port", str(port), "--version", "0.9",
         "--config", str(folder / "config.json"), "--instance", inst.key],
        env={**os.environ, MARKER: str(folder)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reaper.append(orphan.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            version_of(f"http://127.0.0.1:{port}")
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    assert d.actual(inst, ["api"]).versions == {}
    ctx, sink = make_context(tmp_path)
    result = d.deploy(inst, desired("1.0"), ctx)
    assert result.ok, (result, sink.lines)
    assert orphan.wait(timeout=5) is not None
    assert version_of(f"http://127.0.0.1:{port}")["version"] == "1.0"


def test_unresponsive_process_is_not_running(setup: tuple[LocalDeployer, FleetInstance],
                                             tmp_path: Path) -> None:
    d, inst = setup
    assert d.deploy(inst, desired(), make_context(tmp_path)[0]).ok
    pid = version_of(str(d.endpoint(inst, "api")))["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        actual = d.actual(inst, ["api"])
        assert time.monotonic() - started < 3
        assert actual.versions == {}
        assert "does not answer" in actual.detail
    finally:
        os.kill(pid, signal.SIGCONT)
    assert d.actual(inst, ["api"]).satisfies(desired())


def test_options_model() -> None:
    assert registry.options_model("local") is LocalOptions
    with pytest.raises(ValueError, match="extra"):
        LocalOptions.model_validate({"hots": "x"})


# --- the real demo service -------------------------------------------------------------------

demo_present = pytest.mark.skipif(
    not (Path(__file__).parents[3] / "src/rollwave/demo_service/__main__.py").exists(),
    reason="rollwave.demo_service is not there yet")


@demo_present
def test_demo_service_deploys_and_crash_on_start_fails_fast(tmp_path: Path,
                                                            reaper: list[int]) -> None:
    d = local_deployer(tmp_path / "state", {})  # the default LocalRun runs the demo service
    inst = make_instance("globex", "eu-1", target={"port": free_port()})
    config = {"traffic": {"rps": 0}, "reports": {"legacy_export": False}}
    want = DesiredState({"api": "1.0.3"}, {"api": config}, {"api": config_hash(config)})
    result = d.deploy(inst, want, make_context(tmp_path)[0])
    assert result.ok, result
    assert d.actual(inst, ["api"]).satisfies(want)
    body = version_of(str(d.endpoint(inst, "api")))
    assert body["instance"] == "globex/eu-1"
    crashing = {**config, "faults": [{"name": "boom", "when": {"version": "1.1*"},
                                      "crash_on_start": True}]}
    started = time.monotonic()
    bad = d.deploy(inst, DesiredState({"api": "1.1.0"}, {"api": crashing}),
                   make_context(tmp_path)[0])
    assert time.monotonic() - started < 10
    assert not bad.ok
    assert "exited with code 3" in bad.message
    assert "crash_on_start" in bad.log
    assert d.deploy(inst, want, make_context(tmp_path)[0]).ok
    d.stop(inst)
