"""The orchestrator process: launches DBOS, starts recorded rollouts, relays control requests.

``rollwave worker`` runs one. On SQLite a file lock allows a single worker per workspace; on
PostgreSQL several workers share the work, each with its own DBOS executor id. On start DBOS
recovers every workflow that was running when a worker died, which is how a rollout survives
SIGKILL: the replay returns recorded step results and re-runs the step that was cut short.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, SetWorkflowID

import rollwave
from rollwave.core.states import RolloutState
from rollwave.errors import OrchestratorBusy
from rollwave.orchestration import runtime
from rollwave.orchestration.runtime import Runtime
from rollwave.orchestration.workflow import CONTROL_TOPIC, WORKFLOW_NAME, rollout_workflow
from rollwave.storage import rollouts as repo
from rollwave.storage.events import append_event
from rollwave.storage.tables import controls, workers

log = logging.getLogger("rollwave.worker")
DEAD_AFTER = 5.0  # seconds without a heartbeat before a worker's rollouts are taken over
RECOVERY_EVERY = 2.0
# Imported before any thread starts: a package whose __init__ imports one of its submodules
# (rollwave.adapters.metrics registers scrape_collector) deadlocks when one thread imports the
# package while another imports the submodule; Python then raises _DeadlockError in one of
# them (seen as a rollout failed at its first step, under load).
PRELOAD = ("rollwave.adapters.metrics", "rollwave.verification.policy",
           "rollwave.orchestration.monitor")
STOP_GRACE = 30.0  # seconds a stopping worker waits for its workflows to leave
RECOVERY_LOCK = 7_466_202_612
APP_VERSION = f"rollwave-{rollwave.__version__}"

#: Extra work each worker does on every tick (e.g. starting due flag rollout steps). Each hook
#: gets the runtime; it must be quick and must not raise for operational problems.
def _fleet_watch(rt: Runtime) -> None:
    from rollwave.orchestration.monitor import tick_hook

    tick_hook(rt)


TICK_HOOKS: list[Callable[[Runtime], None]] = [_fleet_watch]


def dbos_config(url: str, executor_id: str | None) -> DBOSConfig:
    config: DBOSConfig = {
        "name": "rollwave",
        "system_database_url": url,
        "application_version": APP_VERSION,
        "log_level": os.environ.get("ROLLWAVE_DBOS_LOG_LEVEL", "WARNING"),
        "notification_listener_polling_interval_sec": 0.1,
    }
    if executor_id:
        config["executor_id"] = executor_id
    return config


class Worker:
    """One orchestrator process."""

    def __init__(self, rt: Runtime, *, tick: float = 0.2) -> None:
        self.rt = rt
        self.tick_seconds = tick
        self.id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self._lock_file: IO[str] | None = None
        self._started: set[str] = set()
        self._woken: dict[str, frozenset[int]] = {}
        self._launched = False
        self._last_recovery = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        db = self.rt.db
        if db.is_sqlite:
            self._lock_file = _take_lock(self.rt.app.state_dir / "worker.lock")
        self.rt.stopping.clear()
        for module in PRELOAD:  # on this thread, before the workflow and tick threads start
            importlib.import_module(module)
        runtime.install(self.rt)
        DBOS(config=dbos_config(db.dbos_url, None if db.is_sqlite else self.id))
        DBOS.launch()
        self._launched = True
        self._heartbeat()

    def close(self) -> None:
        from rollwave.orchestration.monitor import release_watch

        release_watch(self.rt)
        if self._launched:
            self._leave_workflows()
            # Workflows still running in this process resume in the next worker; their threads
            # may log DBOS errors while it shuts down, which would only alarm the reader.
            logging.getLogger("dbos").setLevel(logging.CRITICAL)
            DBOS.destroy(destroy_registry=False)
            self._launched = False
        with self.rt.db.begin() as conn:
            conn.execute(workers.delete().where(workers.c.id == self.id))
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _leave_workflows(self) -> None:
        """Make this process's workflows leave at their next wait, unrecorded, and wait for them.

        A waiting workflow (paused, baking, at a gate) is woken so it notices at once; one in
        the middle of a wave launches no more instances and leaves when those in flight finish.
        Without this, a workflow's thread would keep the process alive until its durable
        sleep ends (up to an hour for a paused rollout).
        """
        self.rt.stopping.set()

        def wake_all() -> None:
            for rollout_id in sorted(self.rt.active_workflows):
                try:
                    DBOS.send(rollout_id, "stop", CONTROL_TOPIC)
                except Exception as exc:
                    log.warning("could not wake %s to stop: %s: %s", rollout_id,
                                type(exc).__name__, exc)

        # On a thread of its own: DBOS.send refuses to run on a thread with a running event
        # loop, which is where `rollwave serve` (uvicorn's shutdown) closes the worker.
        waker = threading.Thread(target=wake_all, name="rollwave-stop", daemon=True)
        waker.start()
        waker.join(STOP_GRACE)
        deadline = time.monotonic() + STOP_GRACE
        while self.rt.active_workflows and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.rt.active_workflows:
            log.warning("still finishing the instances in flight of %s",
                        ", ".join(sorted(self.rt.active_workflows)))

    def run(self, stop: threading.Event, until: Callable[[], bool] | None = None) -> None:
        """Tick until ``stop`` is set or ``until()`` is true."""
        wake = self.rt.db.work_added
        while not stop.is_set():
            wake.clear()
            self.tick()
            if until is not None and until():
                return
            # a rollout recorded in this process wakes the loop at once; `stop` is seen
            # within one tick at most
            wake.wait(self.tick_seconds)

    # -- one pass ----------------------------------------------------------------------------

    def tick(self) -> None:
        with self.rt.db.read() as conn:
            pending = repo.find_rollouts(conn, states=[RolloutState.PENDING], limit=50)
            rows = conn.execute(sa.select(controls.c.rollout_id, controls.c.id)
                                .where(controls.c.consumed_at.is_(None))).all()
        for rollout in reversed(pending):
            if rollout.id not in self._started:
                self.start_rollout(rollout.id)
        waiting: dict[str, set[int]] = {}
        for rollout_id, control_id in rows:
            waiting.setdefault(rollout_id, set()).add(int(control_id))
        for rollout_id, ids in waiting.items():
            frozen = frozenset(ids)
            if self._woken.get(rollout_id) != frozen:
                self._woken[rollout_id] = frozen
                self._wake(rollout_id)
        self._heartbeat()
        for hook in TICK_HOOKS:
            try:
                hook(self.rt)
            except Exception:  # a broken hook must not stop rollouts
                log.exception("worker tick hook %s failed", getattr(hook, "__name__", hook))
        if not self.rt.db.is_sqlite and time.monotonic() - self._last_recovery > RECOVERY_EVERY:
            self._last_recovery = time.monotonic()
            self.recover_dead_workers()

    def recover_dead_workers(self) -> list[str]:
        """Take over the rollouts of workers that stopped heartbeating (PostgreSQL only).

        DBOS recovers a process's own workflows when it starts; a workflow whose worker died
        for good is recovered here by a survivor. An advisory lock makes exactly one survivor
        do it; DBOS's recovery is itself idempotent per workflow.
        """
        now = datetime.now(UTC)
        with self.rt.db.read() as conn:
            live = set(conn.execute(sa.select(workers.c.id).where(
                workers.c.heartbeat_at >= now - timedelta(seconds=DEAD_AFTER))).scalars())
        pending = DBOS.list_workflows(status=["PENDING"], name=WORKFLOW_NAME, load_input=False,
                                      load_output=False)
        dead = sorted({w.executor_id for w in pending if w.executor_id}
                      - live - {self.id})
        if not dead:
            return []
        with self.rt.db.begin() as conn:
            got = conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"),
                               {"k": RECOVERY_LOCK}).scalar()
            if not got:
                return []
            DBOS._recover_pending_workflows(dead)
            conn.execute(workers.delete().where(workers.c.id.in_(dead)))
            append_event(conn, "worker.recovered",
                         f"worker {self.id} took over the rollouts of stopped workers: "
                         f"{', '.join(dead)}", data={"workers": dead})
        return dead

    def start_rollout(self, rollout_id: str) -> None:
        with SetWorkflowID(rollout_id):
            DBOS.start_workflow(rollout_workflow, rollout_id)
        self._started.add(rollout_id)

    def _wake(self, rollout_id: str) -> None:
        try:
            DBOS.send(rollout_id, "wake", CONTROL_TOPIC)
        except Exception as exc:
            log.debug("could not wake %s: %s", rollout_id, exc)
            self._woken.pop(rollout_id, None)

    def _heartbeat(self) -> None:
        now = datetime.now(UTC)
        with self.rt.db.begin() as conn:
            updated = conn.execute(workers.update().where(workers.c.id == self.id)
                                   .values(heartbeat_at=now)).rowcount
            if not updated:
                conn.execute(workers.insert().values(
                    id=self.id, host=socket.gethostname(), pid=os.getpid(), started_at=now,
                    heartbeat_at=now, load=0.0))
            conn.execute(workers.delete().where(workers.c.heartbeat_at < now - timedelta(hours=1)))


def _take_lock(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OrchestratorBusy(
            f"another orchestrator ({holder}) is running for this workspace",
            hint="it will pick up new rollouts by itself; watch with `rollwave status`") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


def worker_running(state_dir: Path) -> bool:
    """True when some process holds this workspace's worker lock."""
    path = state_dir / "worker.lock"
    if not path.exists():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def active_rollouts(rt: Runtime) -> list[Any]:
    with rt.db.read() as conn:
        return repo.find_rollouts(conn, states=[s for s in RolloutState if s.active])


from rollwave.flags.scheduler import flag_rollout_tick  # noqa: E402 - guarded flag rollouts

TICK_HOOKS.append(flag_rollout_tick)
