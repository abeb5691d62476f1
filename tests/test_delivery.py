"""Delivery policy and backoff, pure: no store, no network, no clock but the one given.

The policy is a table of golden cases (tests/data/delivery/plan.yaml): due alerts,
settings, clock and recent sends -> the actions delivery.plan returns, and what
delivery.after_failure does when one of them fails. The loop that takes the actions
(store writes, sends) is proven end to end in tests/test_pipeline.py and the daemon tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher import backoff, delivery
from watcher.config import NotifierConfig, parse_duration, parse_quiet_hours
from watcher.models import PRIORITIES, PendingAlert, Priority

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "delivery" / "plan.yaml").read_text(encoding="utf-8")
)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def exact_backoff() -> Iterator[None]:
    """Retry times without jitter, so that the table can state them."""
    with backoff.set_testing(True):
        yield


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _show(at: datetime) -> str:
    assert at.utcoffset() == timedelta(0), at  # every time the policy returns is UTC
    return at.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00")


def _alert(spec: str, now: datetime) -> PendingAlert:
    """``"ID [PRIORITY] [held] [summary] [age=DURATION] [attempts=N] [rules=A,B]
    [entities=E,F]"``: an item alert of rule ``r`` unless ``rules`` says otherwise;
    ``summary``: one message for many (a spike's own alert, a flood summary)."""
    number, *words = spec.split()
    values = dict(word.split("=", 1) for word in words if "=" in word)
    flags = [word for word in words if "=" not in word]
    assert set(flags) <= {*PRIORITIES, "held", "summary"}, spec
    assert set(values) <= {"age", "attempts", "rules", "entities"}, spec
    priority: Priority = next((p for p in PRIORITIES if p in flags), "normal")
    age = timedelta(seconds=parse_duration(values["age"])) if "age" in values else timedelta()
    return PendingAlert(
        id=int(number),
        notifier="hook",
        title=f"story {number}",
        body="",
        attempts=int(values.get("attempts", 0)),
        created_at=now - age,
        held="held" in flags,
        priority=priority,
        payload={
            "rules": values.get("rules", "r").split(","),
            "entities": [e for e in values.get("entities", "").split(",") if e],
            **({"entries": []} if "summary" in flags else {}),
        },
    )


def _settings(spec: Mapping[str, Any]) -> delivery.Settings:
    quiet = spec.get("quiet_hours")
    digest = spec.get("digest")
    return delivery.Settings(
        quiet_hours=parse_quiet_hours(quiet) if quiet else None,
        digest=parse_duration(digest) if digest else None,
        max_per_hour=spec.get("max_per_hour"),
    )


def _ids(alerts: Sequence[PendingAlert]) -> str:
    return " ".join(str(a.id) for a in alerts)


def describe(action: delivery.Action) -> str:
    match action:
        case delivery.Send(alert):
            return f"send {alert.id}"
        case delivery.Digest(alerts):
            return f"digest {_ids(alerts)}"
        case delivery.Defer(alerts, until, reason, held):
            return f"defer {_ids(alerts)} until {_show(until)}{' held' if held else ''} ({reason})"
        case delivery.Fail(alerts, error):
            return f"fail {_ids(alerts)}: {error}"
        case delivery.Retry(alerts, at, error, attempts):
            return f"retry {_ids(alerts)} at {_show(at)} (attempt {attempts}): {error}"
        case delivery.GiveUp(alerts, reason, _):
            return f"give up {_ids(alerts)}: {reason}"


def _ids_in(actions: Sequence[delivery.Action]) -> list[int]:
    return sorted(a.id for action in actions for a in action.alerts)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_plan(case: dict[str, Any]) -> None:
    now = _time(case["now"]) if "now" in case else NOW
    pending = [_alert(spec, now) for spec in case["pending"]]
    settings = None if case.get("notifier") == "missing" else _settings(case.get("settings", {}))
    recent = [_time(at) for at in case.get("recent_sends", [])]

    spiking = [tuple(kind_name.split()) for kind_name in case.get("spiking", [])]
    actions = delivery.plan(
        pending, settings=settings, now=now, recent_sends=recent, spiking=spiking
    )

    assert [describe(action) for action in actions] == case["plan"]
    assert _ids_in(actions) == sorted(a.id for a in pending)  # each alert once, none dropped
    if "fails" not in case:
        return
    index = [describe(action) for action in actions].index(case["fails"])
    failed, rest = actions[index], actions[index + 1 :]
    failed_at = _time(case["failed_at"]) if "failed_at" in case else now
    after = delivery.after_failure(
        failed.alerts,
        rest,
        error=case["error"],
        now=failed_at,
        max_age=parse_duration(case.get("max_age", "1d")),
        retry=parse_duration(case.get("retry", "30s")),
    )
    assert [describe(action) for action in after] == case["after_failure"]
    assert _ids_in(after) == _ids_in([failed, *rest])  # nothing taken is lost either


def test_a_digest_goes_at_the_priority_of_its_highest_alert() -> None:
    alerts = tuple(_alert(spec, NOW) for spec in ("1 low", "2 high", "3"))
    assert delivery.Digest(alerts).priority == "high"
    assert delivery.Digest(alerts[:1]).priority == "low"


def test_settings_are_read_from_a_notifier_config() -> None:
    config = NotifierConfig(
        url="json://localhost", quiet_hours="22:00-07:00 Europe/Kyiv", digest="1h", max_per_hour=5
    )
    settings = delivery.Settings.of(config)
    assert (settings.digest, settings.max_per_hour) == (3600.0, 5)
    assert settings.quiet_hours is config.quiet_hours


# -- which alerts are due -------------------------------------------------------------------


def _due(notifier: str, number: int, next_attempt_in: float | None = None) -> PendingAlert:
    at = NOW + timedelta(seconds=next_attempt_in) if next_attempt_in is not None else None
    return PendingAlert(number, notifier, f"story {number}", "", 0, NOW, next_attempt_at=at)


@pytest.mark.parametrize(
    ("pending", "muted", "expected"),
    [
        pytest.param(
            [_due("a", 1), _due("b", 2, 0), _due("a", 3, -60)],
            (),
            {"a": [1, 3], "b": [2]},
            id="due now or earlier, per notifier, in order",
        ),
        pytest.param(
            [_due("a", 1), _due("a", 2, 30), _due("a", 3), _due("b", 4)],
            (),
            {"a": [1], "b": [4]},
            id="nothing overtakes an alert that is not due; other notifiers go on",
        ),
        pytest.param(
            [_due("a", 1, 30), _due("a", 2)],
            (),
            {},
            id="a notifier whose first alert waits sends nothing",
        ),
        pytest.param(
            [_due("a", 1), _due("muted", 2), _due("b", 3)],
            ("muted",),
            {"a": [1], "b": [3]},
            id="a muted notifier's alerts wait, untried",
        ),
    ],
)
def test_due_by_notifier(
    pending: list[PendingAlert], muted: tuple[str, ...], expected: dict[str, list[int]]
) -> None:
    due = delivery.due_by_notifier(pending, now=NOW, muted=muted)
    assert {name: [a.id for a in alerts] for name, alerts in due.items()} == expected


# -- the one backoff function ---------------------------------------------------------------


FEEDS = {"cap": backoff.FEED_CAP, "jitter": backoff.FEED_JITTER}
DELIVERY = {"cap": backoff.DELIVERY_CAP, "jitter": backoff.DELIVERY_JITTER}


@pytest.mark.parametrize(
    ("attempt", "base", "limits", "retry_after", "seconds"),
    [
        pytest.param(1, 900, FEEDS, None, 900, id="feeds: the first failure waits one interval"),
        pytest.param(3, 900, FEEDS, None, 3600, id="feeds: the interval doubles per failure"),
        pytest.param(0, 900, FEEDS, None, 900, id="an attempt below one counts as one"),
        pytest.param(30, 3600, FEEDS, None, 86400, id="feeds: never more than a day"),
        pytest.param(1, 60, FEEDS, 7200, 7200, id="feeds: a longer Retry-After is honoured"),
        pytest.param(2, 600, FEEDS, 60, 1200, id="feeds: a shorter Retry-After changes nothing"),
        pytest.param(1, 60, FEEDS, 7 * 86400, 86400, id="feeds: Retry-After is capped too"),
        pytest.param(1, 30, DELIVERY, None, 30, id="delivery: the first retry waits retry"),
        pytest.param(4, 30, DELIVERY, None, 240, id="delivery: doubling per attempt"),
        pytest.param(12, 30, DELIVERY, None, 3600, id="delivery: never more than an hour"),
    ],
)
def test_backoff_without_jitter(
    attempt: int, base: float, limits: dict[str, float], retry_after: float | None, seconds: float
) -> None:
    wait = backoff.delay(attempt=attempt, base=base, retry_after=retry_after, **limits)
    assert wait == timedelta(seconds=seconds)


@pytest.mark.parametrize(("limits", "low", "high"), [(FEEDS, 0.9, 1.1), (DELIVERY, 0.8, 1.2)])
def test_backoff_jitter_spreads_waits_within_its_bounds(
    limits: dict[str, float], low: float, high: float
) -> None:
    with backoff.set_testing(False):
        waits = {backoff.delay(attempt=2, base=100, **limits).total_seconds() for _ in range(200)}
    assert all(200 * low <= wait <= 200 * high for wait in waits)
    assert min(waits) < 200 * (1 - (1 - low) / 2) and max(waits) > 200 * (1 + (high - 1) / 2)


def test_jitter_never_passes_the_cap() -> None:
    with backoff.set_testing(False):
        waits = [backoff.delay(attempt=20, base=30, **DELIVERY) for _ in range(200)]
    assert max(waits) <= timedelta(hours=1)


def test_the_testing_switch_restores_the_mode_it_found() -> None:
    assert backoff.is_testing()  # the autouse fixture
    with backoff.set_testing(False):
        assert not backoff.is_testing()
        with backoff.set_testing(True):
            assert backoff.is_testing()
        assert not backoff.is_testing()
    assert backoff.is_testing()


def test_delivery_wakes_when_a_notifiers_first_alert_is_due() -> None:
    """An alert queued behind one that waits for its retry waits with it."""
    t0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    retry, queued_later, other = t0 + timedelta(minutes=5), t0, t0 + timedelta(minutes=2)
    order = [("ops", retry), ("ops", queued_later), ("desk", other), ("desk", t0)]
    assert delivery.next_wake(order) == other
    assert delivery.next_wake(order, muted={"desk"}) == retry
    assert delivery.next_wake([]) is None
