"""Notification channels (log, webhook) and the outbox: enqueue, deliver, retry, give up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollwave.adapters.notify import (
    NotifierEnvironment,
    build_notifier,
    channel_problems,
    channels_from_settings,
)
from rollwave.adapters.notify.outbox import MAX_ATTEMPTS, deliver_due, enqueue, pending
from rollwave.errors import ConfigError
from rollwave.ports.notify import Notification, NotifyError
from rollwave.storage.db import Database
from rollwave.storage.events import list_events
from tests.flags.helpers import WebhookReceiver

NOTE = Notification(event="flag.rollout.reverted", subject="Flag x reverted",
                    message="error ratio 12% (60 of 500 requests) is above the 5% limit",
                    at=datetime(2026, 12, 1, tzinfo=UTC), severity="critical",
                    data={"flag": "x"})


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'rw.db'}")


def test_channels_default_to_the_log_and_filter_by_event_and_severity() -> None:
    assert [c.kind for c in channels_from_settings(None)] == ["log"]
    channels = channels_from_settings({
        "pager": {"kind": "webhook", "url": "https://pager.example/x",
                  "events": ["flag.rollout.*"], "min_severity": "critical"},
        "chat": {"kind": "webhook", "url": "https://chat.example/x", "events": ["release.*"]},
    })
    wants = {c.name: c.wants(NOTE.event, NOTE.severity) for c in channels}
    assert wants == {"pager": True, "chat": False}
    assert not channels[0].wants("flag.rollout.step", "info")


def test_bad_channel_settings_are_explained() -> None:
    problems = channel_problems({
        "a": {"kind": "carrier-pigeon"},
        "b": {"kind": "webhook"},
        "c": {"kind": "webhook", "url": "ftp://x", "events": "flag.*"},
    })
    text = "\n".join(problems)
    assert "channel 'a': unknown kind 'carrier-pigeon' (known: log, webhook)" in text
    assert "channel 'b'" in text
    assert "url_secret" in text
    assert "channel 'c': 'events' must be a list" in text
    with pytest.raises(ConfigError):
        channels_from_settings({"a": {"kind": "carrier-pigeon"}})


def test_the_webhook_posts_json_and_resolves_secrets() -> None:
    with WebhookReceiver() as hook:
        channel = channels_from_settings({"ops": {
            "kind": "webhook", "url_secret": "env:HOOK_URL",
            "header_secrets": {"Authorization": "env:HOOK_AUTH"}}})[0]
        secrets = {"env:HOOK_URL": f"{hook.url}/in", "env:HOOK_AUTH": "Bearer t0k"}
        notifier = build_notifier(channel, NotifierEnvironment(secret=secrets.__getitem__))
        receipt = notifier.send(NOTE)
        assert receipt == "HTTP 200 from 127.0.0.1"
        request = hook.requests[0]
        assert request["headers"]["Authorization"] == "Bearer t0k"
        assert request["json"]["message"] == NOTE.message
        assert request["json"]["source"] == "rollwave"
        hook.status = 503
        with pytest.raises(NotifyError, match="HTTP 503"):
            notifier.send(NOTE)
    with pytest.raises(NotifyError, match="failed"):
        notifier.send(NOTE)  # nobody listens any more


def test_the_outbox_retries_with_backoff_then_delivers(db: Database) -> None:
    with WebhookReceiver() as hook:
        channels = channels_from_settings({"ops": {"kind": "webhook", "url": hook.url}})
        with db.begin() as conn:
            assert enqueue(conn, channels, NOTE) == 1
        hook.status = 500
        first = deliver_due(db, channels)
        assert [(d.ok, d.attempts) for d in first] == [(False, 1)]
        assert deliver_due(db, channels) == []  # not due again yet
        hook.status = 200
        later = datetime.now(UTC) + timedelta(seconds=6)
        second = deliver_due(db, channels, now=lambda: later)
        assert [(d.ok, d.attempts) for d in second] == [(True, 2)]
        assert len(hook.delivered()) == 1
    assert pending(db) == []
    with db.read() as conn:
        kinds = [e.kind for e in list_events(conn, kind_prefix="notify.")]
        sent = list_events(conn, kinds=["notify.sent"])[0]
    assert kinds == ["notify.retry", "notify.sent"]
    assert "127.0.0.1" not in str(sent.data.get("channel"))  # the channel's name, not its URL
    assert sent.data["channel"] == "ops"


def test_the_outbox_gives_up_after_max_attempts(db: Database) -> None:
    channels = channels_from_settings({"ops": {"kind": "webhook",
                                               "url": "http://127.0.0.1:9/unreachable"}})
    with db.begin() as conn:
        enqueue(conn, channels, NOTE)
    moment = datetime.now(UTC)
    for _ in range(MAX_ATTEMPTS):
        moment += timedelta(hours=1)
        deliver_due(db, channels, now=lambda: moment)  # noqa: B023 - called right away
    assert pending(db) == []
    with db.read() as conn:
        assert [e.kind for e in list_events(conn, kind_prefix="notify.")][-1] == "notify.failed"


def test_the_log_channel_records_an_event(db: Database) -> None:
    channels = channels_from_settings(None)
    with db.begin() as conn:
        enqueue(conn, channels, NOTE)
    [delivery] = deliver_due(db, channels)
    assert delivery.ok
    with db.read() as conn:
        event = list_events(conn, kinds=["notify.sent"])[0]
    assert NOTE.subject in event.message
    assert event.data["message"] == NOTE.message
