"""Delivery through apprise to real receivers: a loopback webhook, a real SMTP server, chat
services with small length limits, and the local syslog socket."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given, settings
from hypothesis import strategies as st
from support import Receiver, private_dev, without_dev_log

from watcher.alerts import Style, render_digest
from watcher.config import NotifierConfig
from watcher.exceptions import NotifyError
from watcher.notify import (
    Notifier,
    build_notifiers,
    local_syslog_problem,
    split_body,
    validate_url,
)


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


# -- long messages: split between entries, never cut ------------------------------------------


def _entries(count: int, *, prefix: str = "Kharkiv report") -> list[dict[str, Any]]:
    """Digest entries whose titles are unique words that no format escapes."""
    return [
        {
            "title": f"{prefix} {n:03d}",
            "link": f"http://example.org/story/{n}",
            "feed": "news",
            "rules": ["kharkiv"] if n % 3 else ["peace-talks"],
        }
        for n in range(count)
    ]


def _squeezed(text: str) -> str:
    """Text without the whitespace and <br> that may go at a cut."""
    return re.sub(r"\s+|<br>", "", text)


def test_a_body_that_fits_comes_back_unchanged() -> None:
    body = "line one\n\n  indented\n"
    assert split_body(body, len(body)) == [body]
    assert split_body("", 10) == [""]


def test_text_digest_parts_fit_keep_entries_whole_and_list_each_once() -> None:
    _, body = render_digest(_entries(150), Style("text"))
    parts = split_body(body, 1000)
    assert len(parts) > 5
    assert all(len(part) <= 1000 for part in parts)
    assert _squeezed("".join(parts)) == _squeezed(body)
    for n in range(150):
        holding = [part for part in parts if f"Kharkiv report {n:03d} (news)" in part]
        assert len(holding) == 1, n
        # the title line and its link line stay together
        assert f"Kharkiv report {n:03d} (news)\n  http://example.org/story/{n}\n" in (
            holding[0] + "\n"
        )


def test_an_entry_longer_than_the_limit_is_split_between_its_lines() -> None:
    body = (
        "• short (news)\n  http://example.org/1\n• " + "x" * 30 + " (news)\n  http://example.org/2"
    )
    parts = split_body(body, 40)
    assert parts == [
        "• short (news)\n  http://example.org/1",
        "• " + "x" * 30 + " (news)",
        "  http://example.org/2",
    ]


def test_only_a_line_longer_than_the_limit_is_cut_and_hard_at_the_limit() -> None:
    line = "".join(str(n % 10) for n in range(95))
    parts = split_body(f"before\n{line}\nend", 20)
    # The line's last piece goes on with the lines after it.
    assert parts == [
        "before",
        line[0:20],
        line[20:40],
        line[40:60],
        line[60:80],
        line[80:] + "\nend",
    ]


def test_html_is_split_at_its_br_joins_and_never_inside_a_tag() -> None:
    _, body = render_digest(_entries(150), Style("html"))
    parts = split_body(body, 700, fmt="html")
    assert len(parts) > 5 and all(len(part) <= 700 for part in parts)
    assert _squeezed("".join(parts)) == _squeezed(body)
    for part in parts:
        assert not part.endswith("<br>") and not part.startswith("\n")
        assert part.count("<a ") == part.count("</a>") and part.count("<b>") == part.count("</b>")
    # One long line of tags and entities: cut between them, each piece as long as it can be.
    line = " ".join(f'<a href="http://example.org/{n}">story &amp; {n}</a>' for n in range(40))
    parts = split_body(line, 100, fmt="html")
    assert "".join(parts) == line
    links = re.findall(r"<a [^>]*>.*?</a>", line)
    assert all(piece.count("<a ") == piece.count("</a>") for piece in parts)
    assert sum(len(re.findall(r"<a [^>]*>.*?</a>", piece)) for piece in parts) == len(links)


def test_markdown_is_never_cut_inside_a_link_bold_or_escape() -> None:
    line = " ".join(f"**[story\\_{n}](http://example.org/{n})** \\(x\\)" for n in range(60))
    parts = split_body(line, 120, fmt="markdown")
    assert "".join(parts) == line and all(len(part) <= 120 for part in parts)
    for piece in parts:
        assert piece.count("**") % 2 == 0
        assert piece.count("[") == piece.count("](") == piece.count(")**")
        assert not piece.endswith("\\")
    _, digest = render_digest(_entries(150), Style("markdown"))
    parts = split_body(digest, 500, fmt="markdown")
    links = re.findall(r"\[[^\]]*\]\([^)]*\)", digest)
    assert sum(len(re.findall(r"\[[^\]]*\]\([^)]*\)", part)) for part in parts) == len(links)


def test_a_link_longer_than_the_limit_is_cut_as_a_last_resort() -> None:
    line = f"[a long one](http://example.org/{'x' * 200})"
    parts = split_body(line, 50, fmt="markdown")
    assert "".join(parts) == line and all(len(part) <= 50 for part in parts)


def test_split_measures_with_the_services_own_length_and_line_cap() -> None:
    body = "\n".join(f"example.org item {n}" for n in range(30))

    def escaped(text: str) -> int:  # what Markdown escaping makes of it
        return len(text) + text.count(".")

    parts = split_body(body, 100, measure=escaped)
    assert all(escaped(part) <= 100 for part in parts)
    assert "\n".join(parts) == body
    assert max(escaped(part) for part in parts) > 90  # and still as full as it can be
    by_lines = split_body(body, 10_000, max_lines=4)
    assert [part.count("\n") + 1 for part in by_lines] == [4] * 7 + [2]
    assert "\n".join(by_lines) == body


_LINE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=60
)


@given(
    entries=st.lists(
        st.tuples(_LINE, st.one_of(st.none(), _LINE.map(lambda s: "  " + s))), max_size=40
    ),
    limit=st.integers(min_value=1, max_value=300),
)
@settings(max_examples=300, deadline=None)
def test_any_text_splits_into_parts_that_fit_and_lose_nothing(
    entries: list[tuple[str, str | None]], limit: int
) -> None:
    lines = [line for title, link in entries for line in (title, link) if line is not None]
    body = "\n".join(lines)
    parts = split_body(body, limit)
    assert all(len(part) <= limit for part in parts)
    assert _squeezed("".join(parts)) == _squeezed(body)
    if len(parts) > 1:
        for title, link in entries:
            entry = title if link is None else f"{title}\n{link}"
            if link is not None and len(entry) <= limit and title.strip() and link.strip():
                # an entry that fits in a part is never torn apart
                assert any(entry in part for part in parts)


@given(
    titles=st.lists(_LINE.filter(str.strip), min_size=1, max_size=60),
    fmt=st.sampled_from(["text", "markdown", "html"]),
    limit=st.integers(min_value=60, max_value=600),
)
@settings(max_examples=150, deadline=None)
def test_any_digest_splits_without_cutting_a_line_that_fits(
    titles: list[str], fmt: str, limit: int
) -> None:
    entries = [
        {"title": title, "link": f"http://example.org/{n}", "feed": "news", "rules": ["r"]}
        for n, title in enumerate(titles)
    ]
    _, body = render_digest(entries, Style(fmt))
    parts = split_body(body, limit, fmt=fmt)
    assert all(len(part) <= limit for part in parts)
    assert _squeezed("".join(parts)) == _squeezed(body)
    if len(parts) > 1:
        for line in body.split("\n"):
            whole = line.removesuffix("<br>").strip()
            if whole and len(line) <= limit:
                assert sum(whole in part for part in parts) >= 1, line


# -- a real service with a small limit, on loopback -------------------------------------------


def _arrived_in_parts(receiver: Receiver, count: int, limit: int) -> list[str]:
    """The messages' texts, after checking each fits ``limit`` and is numbered in order."""
    texts = [str(message["text"]) for message in receiver.messages]
    assert len(texts) > 1
    assert all(len(text) <= limit for text in texts)
    for number, text in enumerate(texts, 1):
        # The service has no title field: apprise puts the title atop (Markdown-escaped).
        heading = text.split("\n", 1)[0].strip().replace("\\", "")
        assert heading.endswith(f"{count} alerts ({number}/{len(texts)})"), heading
    everything = "\n".join(texts)
    for n in range(count):
        assert everything.count(f"Kharkiv report {n:03d}") == 1, n
    return texts


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_a_150_entry_digest_arrives_in_parts_listing_each_entry_once(
    receiver: Receiver, fmt: str
) -> None:
    # Mattermost's incoming webhook: 4000 characters, plain text, no title field.
    url = f"mmost://127.0.0.1:{receiver.port}/canary-secret-123"
    notifier = Notifier("chat", NotifierConfig(url=url, format=fmt))
    title, body = render_digest(_entries(150), notifier.style)
    assert notifier.send(title, body).ok
    texts = _arrived_in_parts(receiver, 150, 4000)
    if fmt == "text":  # each entry's link line arrived with its title line
        for text in texts:
            for n in map(int, re.findall(r"Kharkiv report (\d{3})", text)):
                assert f"Kharkiv report {n:03d} (news)\n  http://example.org/story/{n}\n" in (
                    text + "\n"
                )


def test_a_digest_fits_rocket_chat_after_markdown_escaping(receiver: Receiver) -> None:
    # Rocket.Chat's incoming webhook: 1000 characters of Markdown, no title field. A text
    # body grows when apprise escapes it (example\.org): the split counts that. apprise
    # spaces Rocket.Chat messages 5.5 s apart, so this digest is a short one.
    url = f"rocket://hookid%2Fcanarysecret123@127.0.0.1:{receiver.port}"
    notifier = Notifier("chat", url)
    title, body = render_digest(_entries(36), notifier.style)
    assert len(body) < 3000
    assert notifier.send(title, body).ok
    texts = _arrived_in_parts(receiver, 36, 1000)
    assert len(texts) >= 3
    for text in texts:
        for n in map(int, re.findall(r"Kharkiv report (\d{3})", text)):
            assert f"Kharkiv report {n:03d} \\(news\\)\n  http://example\\.org/story/{n}" in text


def test_part_titles_fit_a_services_title_limit() -> None:
    # ntfy: a title field of 200 characters and bodies of 7800.
    notifier = Notifier("ntfy", "ntfy://ntfy.example.org/alerts")
    title = "[kharkiv] " + "a very long story title " * 12
    body = "\n".join(f"• entry {n} (news)" for n in range(1200))
    parts = notifier.parts(title, body)
    count = len(parts)
    assert count > 1
    for number, (part_title, part_body) in enumerate(parts, 1):
        assert len(part_title) <= 200 and part_title.endswith(f"… ({number}/{count})")
        assert len(part_body) <= 7800
    assert "\n".join(part for _, part in parts) == body
    assert notifier.parts("short", "short body") == [("short", "short body")]


def test_a_part_that_fails_fails_the_send_and_a_retry_resends_every_part(
    receiver: Receiver,
) -> None:
    notifier = Notifier("chat", f"mmost://127.0.0.1:{receiver.port}/canary-secret-123")
    title, body = render_digest(_entries(150), notifier.style)
    count = len(notifier.parts(title, body))
    assert count >= 3
    receiver.statuses = [200, 500]
    result = notifier.send(title, body)
    assert not result.ok and result.error.startswith(f"part 2 of {count}:")
    assert receiver.attempts == 2 and len(receiver.messages) == 1  # the rest were not tried
    assert notifier.send(title, body).ok  # the retry: at-least-once, part 1 arrives again
    headings = [str(m["text"]).split("\n", 1)[0].strip() for m in receiver.messages]
    assert [h.rsplit("(", 1)[1] for h in headings] == [
        f"1/{count})",
        *(f"{n}/{count})" for n in range(1, count + 1)),
    ]


# -- local syslog: no socket, no "sent" -------------------------------------------------------


def test_local_syslog_problem_names_what_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "log"
    assert local_syslog_problem(str(missing)) == f"{missing} does not exist"
    plain = tmp_path / "plain"
    plain.write_text("")
    assert local_syslog_problem(str(plain)) == f"{plain} is not a socket"
    stale = tmp_path / "stale"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
        gone.bind(str(stale))
    problem = local_syslog_problem(str(stale))  # the file is left, nobody listens
    assert problem is not None and problem.startswith(f"nothing listens on {stale} (")
    listening = tmp_path / "dev-log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslogd:
        syslogd.bind(str(listening))
        assert local_syslog_problem(str(listening)) is None


_SYSLOG_SEND = """
import socket, sys
from watcher.notify import Notifier
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslogd:
    if sys.argv[1] == "listen":
        syslogd.bind("/dev/log")
    notifier = Notifier("local", "syslog://")
    print(notifier.problem())
    result = notifier.send("[watcher] test", "through the local syslog")
    print(result.ok, result.error)
    if result.ok:
        syslogd.settimeout(20)
        print(syslogd.recv(65536).decode())
"""


def test_syslog_fails_without_dev_log_and_delivers_with_it() -> None:
    def run(prefix: list[str], mode: str) -> list[str]:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", _SYSLOG_SEND, mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    problem, outcome = run(without_dev_log(), "no")
    assert problem == "no local syslog: /dev/log does not exist"
    assert outcome == "False no local syslog: /dev/log does not exist; nothing was delivered"
    # A private /dev where this process listens on /dev/log: the message really arrives.
    problem, outcome, received = run(private_dev(), "listen")
    assert (problem, outcome) == ("None", "True ")
    assert received.endswith("[watcher] test: through the local syslog")
