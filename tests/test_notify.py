"""Delivery through apprise to real receivers: a loopback webhook and a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from support import Receiver

from watcher.exceptions import NotifyError
from watcher.notify import Notifier, build_notifiers, validate_url


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Mailbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


def test_json_webhook_receives_title_and_body(receiver: Receiver) -> None:
    result = Notifier("ops", receiver.url).send("[kharkiv] Title", "Body\nline 2")
    assert result.ok and result.error == ""
    (message,) = receiver.messages
    assert message["title"] == "[kharkiv] Title"
    assert message["message"] == "Body\nline 2"


def test_email_arrives_once_with_subject_and_body(smtp: tuple[int, _Mailbox]) -> None:
    port, box = smtp
    url = f"mailto://127.0.0.1:{port}?from=watcher@example.org&to=desk@example.org&mode=insecure"
    assert Notifier("mail", url).send("[kharkiv] Shelling in Kharkiv", "Feed: kyiv-news").ok
    (envelope,) = box.messages
    assert envelope.rcpt_tos == ["desk@example.org"]
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["Subject"] == "[kharkiv] Shelling in Kharkiv"
    assert "Feed: kyiv-news" in msg.get_body(("plain",)).get_content()


def test_failure_gives_a_reason_without_the_secret(receiver: Receiver) -> None:
    receiver.status = 500
    url = f"json://user:canary-secret-123@127.0.0.1:{receiver.port}/hook"
    result = Notifier("ops", url).send("t", "b")
    assert not result.ok
    assert "500" in result.error or "failed" in result.error.lower()
    assert "canary-secret-123" not in result.error


def test_unreachable_target_is_a_failed_result_not_an_exception() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = Notifier("ops", f"json://127.0.0.1:{port}/").send("t", "b")
    assert not result.ok and result.error


def test_redacted_url_masks_passwords() -> None:
    notifier = Notifier("ops", "json://user:canary-secret-123@hooks.example.org/x")
    assert "canary-secret-123" not in notifier.redacted_url
    assert notifier.redacted_url.startswith("json://user:")


def test_url_validation() -> None:
    assert validate_url("json://hooks.example.org/x") is None
    assert validate_url("ntfy://ntfy.example.org/topic") is None
    problem = validate_url("nosuch://user:canary-secret-123@x")
    assert problem is not None and "canary-secret-123" not in problem
    assert validate_url("no scheme at all") is not None
    with pytest.raises(NotifyError, match="'bad'"):
        build_notifiers({"bad": "nosuch://x"})
