"""The web console (issue 20): pages in a real headless Chromium against a state written by
a real daemon, the console served by that daemon (``web:``) and by `watcher web`; its
security (loopback unless auth, the Host allow-list, CSRF, CSP, escaping, redaction); and
the read-only promise (the SQLite file byte-identical after a session of clicks).

The browser tests are never skipped: without Debian's chromium and chromium-driver they
fail and say what to install.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from support import (
    MATCH_RULES,
    Daemon,
    FeedServer,
    Receiver,
    Route,
    Story,
    poll_at,
    state_sql,
    trickle,
    wait_until,
)

from watcher.config import parse_config
from watcher.exceptions import ConfigError
from watcher.models import PollDecision, PollRecord
from watcher.redact import redact_text, redact_url
from watcher.store import PRUNE_EVERY, Store
from watcher.store.schema import POLL_HISTORY
from watcher.web.security import (
    FormTokens,
    allowed_hosts,
    hash_password,
    hash_problem,
    verify_password,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HOSTILE = "<script>alert(1)</script> Kharkiv <img src=x onerror=alert(2)>"
SECRET = "hunter2canary"  # in the broken feed's URL: never on a page
KEY = "k3y-canary-0042"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def watcher_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


class WebProcess:
    """`watcher web` as a real process, until stop()."""

    def __init__(self, config: Path, port: int, log: Path, *extra: str) -> None:
        self.port, self.log = port, log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "watcher",
                    "web",
                    "-c",
                    str(config),
                    "--listen",
                    f"127.0.0.1:{port}",
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        assert wait_until(lambda: answers(port) or self.proc.poll() is not None, 30)
        assert self.proc.poll() is None, log.read_text()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=30)


def answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return True


# -- a state written by a real daemon, which serves the console itself (web:) ---------------


@dataclass
class World:
    tmp: Path
    config: Path
    db: Path
    port: int
    daemon: Daemon
    feeds: FeedServer
    receiver: Receiver

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def write_config(
    path: Path, state: str | Path, feeds: FeedServer, receiver: Receiver, *, web: str = ""
) -> None:
    broken = feeds.url("/broken").replace("://", f"://watcher:{SECRET}@") + f"?apikey={KEY}&p=1"
    path.write_text(
        f"""\
state: {state}
allow_private_networks: true
feed_health: {{failures: 2}}
delivery: {{retry: 1s}}
feeds:
  - name: news
    url: {feeds.url("/news")}
    interval: 1s
    tags: [ukraine]
  - name: wire
    url: {feeds.url("/wire")}
    interval: 1s
  - name: broken
    url: "{broken}"
    interval: 1s
{MATCH_RULES}  - name: ceasefire
    query: '(ceasefire OR truce) AND NOT football'
notifiers:
  hook: "{receiver.url}"
  pager: "json://pager:s3cretpass@127.0.0.1:{free_port()}/down"
{web}"""
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("web")
    feeds, receiver = FeedServer(), Receiver()
    news, wire = Story(), Story()
    news.add(1, "Kharkiv: there before watcher started")
    wire.add(1, "Markets open flat")
    feeds.routes["/news"] = Route(news.body(), etag='"n1"')
    feeds.routes["/wire"] = Route(wire.body())
    feeds.routes[f"/broken?apikey={KEY}&p=1"] = Route(
        b"oops", status=500, content_type="text/plain"
    )
    port = free_port()
    config, db = tmp / "config.yaml", tmp / "w.db"
    write_config(config, db, feeds, receiver, web=f"web:\n  listen: 127.0.0.1:{port}\n")
    daemon = Daemon(config, tmp / "daemon.log")
    daemon.start()
    try:
        assert daemon.started(), daemon.log_text()
        assert wait_until(lambda: feeds.hits("/news") >= 2 and feeds.hits("/wire") >= 2)
        news.add(2, "Shelling in Kharkov overnight", "Residents of Kharkov sheltered overnight.")
        news.add(3, HOSTILE, "A hostile title about Kharkiv.")
        feeds.routes["/news"] = Route(news.body(), etag='"n2"')
        assert len(receiver.wait_for(2)) == 2, daemon.log_text()
        wire.add(12, "Ceasefire talks resume", "Envoys met to discuss a truce.")
        # The same story as news's item 2 (its link): it joins that story, alerts nothing.
        wire.items.insert(
            0,
            {
                "title": "Shelling in Kharkov overnight",
                "link": "http://example.org/story/2",
                "guid": "wire-13",
                "description": "Residents of Kharkov sheltered.",
            },
        )
        feeds.routes["/wire"] = Route(wire.body())
        assert len(receiver.wait_for(3)) >= 3, daemon.log_text()
        # The pager is down: its alerts wait, tried and failed, with the error kept.
        assert wait_until(lambda: "alert delivery failed" in daemon.log_text()), daemon.log_text()
        assert wait_until(lambda: "failures=2" in daemon.log_text()), daemon.log_text()
        yield World(tmp, config, db, port, daemon, feeds, receiver)
    finally:
        daemon.stop()
        feeds.close()
        receiver.close()


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through its chromedriver (Selenium); never skipped."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: the browser tests need Debian's Chromium: "
            "apt-get install chromium chromium-driver (as root; .ci/run does it)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="watcher-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver: Any, name: str) -> None:
    """Keep a screenshot of the whole page as a test artifact (test-artifacts/web/)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(700, min(int(height) + 40, 3000)))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def text_of(driver: Any, tag: str = "body") -> str:
    """The text a user sees; read again when a navigation replaced the page meanwhile, and
    "" while there is none: between a form's submission and its answer the browser may
    hold a document without a body yet (it failed a wait_until once, by raising)."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    for _ in range(50):
        try:
            return str(driver.find_element(By.TAG_NAME, tag).text)
        except StaleElementReferenceException:
            continue
        except NoSuchElementException:
            return ""
    return ""


def no_dialog(driver: Any) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        shown = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    shown.dismiss()
    return False


def csp_violations(driver: Any) -> list[str]:
    return [
        e["message"]
        for e in driver.get_log("browser")
        if "Content Security Policy" in e["message"] or "Refused" in e["message"]
    ]


def test_the_overview_shows_feed_health_lag_notifiers_and_the_chart(
    world: World, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(world.base + "/")
    page = text_of(browser)
    assert "Overview" in page
    # Feeds by health: the broken one failing (2 failures make it so here), the others ok.
    rows = {
        r.find_element(By.TAG_NAME, "a").text: r.text
        for r in browser.find_elements(By.CSS_SELECTOR, "section table tbody tr")
        if r.find_elements(By.CSS_SELECTOR, "a[href^='/feeds/']")
    }
    assert "failing" in rows["broken"] and "ok" in rows["news"] and "ok" in rows["wire"]
    assert "Poll lag" in page and "last poll finished" in page
    # Alerts per notifier: hook's sent, pager's pending, its URL in apprise's privacy form.
    assert "pager" in page and "s3cretpass" not in browser.page_source
    assert "json://pager:****@127.0.0.1" in page
    # The 7-day chart: one SVG per rule, with today's matches in its last bar's tooltip.
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart")
    captions = [c.find_element(By.TAG_NAME, "figcaption").text for c in charts]
    assert any(c.startswith("kharkiv: ") and int(c.split(": ")[1]) >= 2 for c in captions)
    assert any(c.startswith("ceasefire: ") and int(c.split(": ")[1]) >= 1 for c in captions)
    last_bar = charts[0].find_elements(By.CSS_SELECTOR, "rect.bar")[-1]
    assert last_bar.get_attribute("height") not in ("0", "0.0")
    assert SECRET not in browser.page_source and KEY not in browser.page_source
    assert no_dialog(browser) and csp_violations(browser) == []
    shot(browser, "overview")


def test_alerts_are_listed_with_highlighted_terms_and_filter(world: World, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(world.base + "/alerts")
    articles = browser.find_elements(By.CSS_SELECTOR, "article.alert")
    titles = [a.find_element(By.TAG_NAME, "h2").text for a in articles]
    assert "[kharkiv] Shelling in Kharkov overnight" in titles
    # The matched terms are highlighted in the snippet.
    marks = {m.text for m in browser.find_elements(By.CSS_SELECTOR, "article.alert mark")}
    assert "Kharkov" in marks
    # One story carried by two feeds.
    page = text_of(browser)
    assert "2 sources: news, wire" in page
    # The pager's failed attempts and its error (its password masked).
    assert "last error:" in page and "s3cretpass" not in browser.page_source
    shot(browser, "alerts")

    Select(browser.find_element(By.NAME, "rule")).select_by_visible_text("ceasefire")
    Select(browser.find_element(By.NAME, "notifier")).select_by_visible_text("hook")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    assert wait_until(lambda: "rule=ceasefire" in browser.current_url, 10)
    filtered = [
        a.find_element(By.TAG_NAME, "h2").text
        for a in browser.find_elements(By.CSS_SELECTOR, "article.alert")
    ]
    assert filtered == ["[ceasefire] Ceasefire talks resume"]
    assert no_dialog(browser) and csp_violations(browser) == []


def test_hostile_feed_text_is_shown_as_text(world: World, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(world.base + "/alerts?rule=kharkiv&notifier=hook")
    assert "<script>alert(1)</script> Kharkiv" in text_of(browser)
    assert "<script>alert(1)" not in browser.page_source  # escaped, not markup
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main img") == []
    link = next(
        a
        for a in browser.find_elements(By.CSS_SELECTOR, "article.alert h2 a")
        if "script" in a.text
    )
    link.click()
    assert wait_until(lambda: "/alerts/" in browser.current_url, 10)
    assert HOSTILE.split(" <img")[0] in text_of(browser)
    assert no_dialog(browser) and csp_violations(browser) == []
    shot(browser, "alert-hostile")


def test_an_alert_explains_which_clause_held_and_its_delivery(world: World, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # The pager's oldest alert: tried (and failed) before later ones were held back.
    browser.get(world.base + "/alerts?rule=kharkiv&notifier=pager")
    browser.find_elements(By.CSS_SELECTOR, "article.alert h2 a")[-1].click()
    assert wait_until(lambda: "/alerts/" in browser.current_url, 10)
    page = text_of(browser)
    assert "rule kharkiv: MATCH" in page
    clauses = [c.text for c in browser.find_elements(By.CSS_SELECTOR, ".clauses li")]
    assert any(c.startswith("ok entities") for c in clauses), clauses
    assert "pending" in page and "delivery attempts" in page
    attempts = browser.find_element(
        By.XPATH, "//th[text()='delivery attempts']/following-sibling::td"
    )
    assert int(attempts.text) >= 1
    error = browser.find_element(By.XPATH, "//th[text()='last error']/following-sibling::td")
    assert error.text not in ("", "none") and "s3cretpass" not in error.text
    shot(browser, "alert")


def test_a_feed_page_shows_its_polls_error_and_etag(world: World, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(world.base + "/feeds")
    browser.find_element(By.LINK_TEXT, "broken").click()
    assert wait_until(lambda: browser.current_url.endswith("/feeds/broken"), 10)
    page = text_of(browser)
    assert "Internal Server Error" in page  # the last error, in full
    polls = browser.find_elements(By.CSS_SELECTOR, "table:not(.facts) tbody tr")
    assert len(polls) >= 2 and all("error" in p.text and "500" in p.text for p in polls)
    # The URL and the error are redacted: no password, no key, in the page at all.
    assert SECRET not in browser.page_source and KEY not in browser.page_source
    assert "apikey=***" in page and "***@127.0.0.1" in page
    shot(browser, "feed-broken")

    browser.get(world.base + "/feeds/news")
    page = text_of(browser)
    assert '"n2"' in page  # the ETag
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table:not(.facts) tbody tr")]
    assert any("not-modified" in r and "304" in r for r in rows), rows
    assert any(" new 200 " in r for r in rows), rows
    assert "next poll" in page
    shot(browser, "feed")


def test_the_rule_tester_explains_near_misses_and_changes_nothing(
    world: World, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    alerts_before = state_sql(world.db, "SELECT count(*) FROM alerts")
    browser.get(world.base + "/tester")
    browser.find_element(By.NAME, "title").send_keys("Night in Kharkiw")
    browser.find_element(By.NAME, "text").send_keys("A truce was agreed before the football.")
    browser.find_element(By.CSS_SELECTOR, "form.tester button").click()
    assert wait_until(lambda: browser.find_elements(By.ID, "results"), 10), text_of(browser)
    results = browser.find_element(By.ID, "results").text
    assert "0 of 2 rules match" in results
    assert "rule kharkiv: no match" in results and "closest word: 'kharkiw'" in results
    assert "rule ceasefire: no match" in results and "football" in results
    shot(browser, "tester")

    text = browser.find_element(By.NAME, "text")
    text.clear()
    text.send_keys("Shelling in Kharkov as the ceasefire collapsed")
    browser.find_element(By.CSS_SELECTOR, "form.tester button").click()
    assert wait_until(lambda: "2 of 2 rules match" in text_of(browser), 10)
    assert {m.text for m in browser.find_elements(By.CSS_SELECTOR, "#results mark")} >= {
        "Kharkov",
        "ceasefire",
    }
    assert state_sql(world.db, "SELECT count(*) FROM alerts") == alerts_before
    assert no_dialog(browser) and csp_violations(browser) == []


def test_the_console_reads_beside_the_running_daemon_without_disturbing_it(
    world: World, browser: Any
) -> None:
    polled = world.feeds.hits("/news")
    for path in ("/", "/alerts", "/feeds/news", "/tester", "/feeds", "/alerts?status=pending"):
        browser.get(world.base + path)
        page = text_of(browser)
        assert page and "State unavailable" not in page, path
    assert wait_until(lambda: world.feeds.hits("/news") >= polled + 3)
    log = world.daemon.log_text()
    assert "locked" not in log and "Traceback" not in log
    assert httpx.get(world.base + "/healthz").text == "ok\n"


# -- security over HTTP ---------------------------------------------------------------------


def test_every_response_carries_a_strict_csp_and_refuses_foreign_hosts(world: World) -> None:
    for path in ("/", "/alerts", "/feeds/broken", "/tester", "/static/style.css", "/nowhere"):
        response = httpx.get(world.base + path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "server" not in response.headers
    # DNS rebinding: a hostile name that resolves to 127.0.0.1 reaches the port, and is refused.
    refused = httpx.get(world.base + "/", headers={"Host": "evil.example:80"})
    assert refused.status_code == 421 and "evil.example" in refused.text
    assert httpx.get(world.base + "/", headers={"Host": f"localhost:{world.port}"}).is_success


def test_the_tester_refuses_cross_site_posts(world: World) -> None:
    url = world.base + "/tester"
    form = {"text": "Kharkiv", "title": ""}
    assert httpx.post(url, data=form).status_code == 403  # no token
    page = httpx.get(url).text
    token = page.split('name="token" value="')[1].split('"')[0]
    ok = httpx.post(url, data={**form, "token": token})
    assert ok.status_code == 200 and "1 of 2 rules match" in ok.text
    assert httpx.post(url, data={**form, "token": token + "0"}).status_code == 403
    hostile = {"Origin": "http://evil.example"}
    assert httpx.post(url, data={**form, "token": token}, headers=hostile).status_code == 403
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert httpx.post(url, data={**form, "token": token}, headers=cross).status_code == 403
    same = {"Origin": world.base, "Sec-Fetch-Site": "same-origin"}
    assert httpx.post(url, data={**form, "token": token}, headers=same).status_code == 200


def test_listening_beyond_loopback_without_auth_is_refused(world: World, tmp_path: Path) -> None:
    result = watcher_cli("web", "-c", str(world.config), "--listen", f"0.0.0.0:{free_port()}")
    assert result.returncode == 2
    assert "web.auth: required: the console listens on 0.0.0.0" in result.stderr
    # The same in the config: `watcher check` and `watcher run` refuse it, naming the key.
    config = tmp_path / "public.yaml"
    config.write_text(
        world.config.read_text().replace(f"127.0.0.1:{world.port}", "192.0.2.10:8080")
    )
    for command in ("check", "run"):
        result = watcher_cli(command, "-c", str(config))
        assert result.returncode == 2, result.stderr
        assert "web.auth: required: the console listens on 192.0.2.10:8080" in result.stderr


def test_auth_with_a_token_or_hashed_passwords(world: World, tmp_path: Path) -> None:
    made = watcher_cli("web", "--hash-password", stdin="correct horse\ncorrect horse\n")
    assert made.returncode == 0, made.stderr
    stored = made.stdout.strip().splitlines()[-1]
    assert stored.startswith("scrypt$") and "correct horse" not in made.stdout
    config = tmp_path / "auth.yaml"
    token = "t0ken-for-the-console-1234"
    config.write_text(
        world.config.read_text().replace(
            f"  listen: 127.0.0.1:{world.port}\n",
            f"  listen: 0.0.0.0:8080\n  names: [console.example]\n"
            f"  auth:\n    token: {token}\n    users:\n      alice: '{stored}'\n",
        )
    )
    assert watcher_cli("check", "-c", str(config)).returncode == 0
    port = free_port()
    web = WebProcess(config, port, tmp_path / "web.log")
    try:
        base = f"http://127.0.0.1:{port}"
        refused = httpx.get(base + "/")
        assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
        assert httpx.get(base + "/", auth=("alice", "wrong")).status_code == 401
        assert httpx.get(base + "/", auth=("alice", "correct horse")).status_code == 200
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(base + "/alerts", headers=bearer).status_code == 200
        assert httpx.get(base + "/alerts", auth=("anyone", token)).status_code == 200
        # The token itself is a secret: never shown, even where config text would be.
        assert token not in httpx.get(base + "/", headers=bearer).text
        # A configured name is answered; /healthz needs no credentials (probes).
        named = {**bearer, "Host": "console.example"}
        assert httpx.get(base + "/", headers=named).status_code == 200
        assert httpx.get(base + "/healthz").status_code == 200
    finally:
        assert web.stop() == 0


# -- read-only ------------------------------------------------------------------------------


def test_the_overview_shows_an_active_spike(browser: Any, tmp_path: Path) -> None:
    """A steady week of Kharkiv stories, then a burst from five feeds, written through the
    store's poll path; the daemon's spike look opens the episode; the console shows it."""
    from selenium.webdriver.common.by import By

    from watcher.pipeline import evaluate_spikes

    db, config_path = tmp_path / "spikes.db", tmp_path / "config.yaml"
    config_path.write_text(
        f"""\
state: {db}
entities:
  kharkiv:
    aliases: [Kharkiv]
    spike: {{window: 1h, factor: 4, min: 8}}
notifiers:
  hook: "json://localhost/hook"
"""
    )
    now = datetime.now(UTC) - timedelta(minutes=5)
    store = Store.open(db)
    try:
        trickle(store, now - timedelta(minutes=10))
        kharkiv = (("entity", "kharkiv"),)
        for n in range(9):
            poll_at(store, now, f"f{n % 5 + 1}", [(f"b{n}", f"burst-{n}", kharkiv)])
        config = parse_config(config_path.read_text())
        (opened,) = evaluate_spikes(store, config, now=now + timedelta(seconds=30)).opened
        assert opened.stories == 9
    finally:
        store.close()
    port = free_port()
    web = WebProcess(config_path, port, tmp_path / "web.log")
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        section = next(
            s
            for s in browser.find_elements(By.TAG_NAME, "section")
            if s.find_element(By.TAG_NAME, "h2").text == "Active spikes"
        )
        shown = section.text
        assert "entity kharkiv: 9 stories in 1.0 h (usually 1)" in shown, shown
        assert "feeds: f1, f2, f3, f4, f5" in shown, shown
        links = [a.get_attribute("href") for a in section.find_elements(By.TAG_NAME, "a")]
        assert len(links) == 5 and all(h.startswith("http://example.org/burst-") for h in links)
        assert no_dialog(browser) and csp_violations(browser) == []
        shot(browser, "overview-spike")
    finally:
        assert web.stop() == 0


def test_text_of_reads_nothing_where_a_document_has_no_body_yet(browser: Any) -> None:
    """What the waits above rely on: a page without the element reads as no text (an SVG
    document has no <body>, as a document being replaced may not have one yet)."""
    browser.get("data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'><text>x</text></svg>")
    assert text_of(browser) == "" and not wait_until(lambda: "x" in text_of(browser), 0.2)


def test_a_session_of_clicks_leaves_the_state_byte_identical(
    world: World, browser: Any, tmp_path: Path
) -> None:
    """Last of the module: stops the daemon, then `watcher web` alone on its file."""
    from selenium.webdriver.common.by import By

    assert world.daemon.signal(signal.SIGTERM) == 0
    before = hashlib.sha256(world.db.read_bytes()).hexdigest()
    siblings = sorted(p.name for p in world.tmp.iterdir() if p.name.startswith("w.db"))
    port = free_port()
    web = WebProcess(world.config, port, tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        browser.get(base + "/")
        for name in ("news", "wire", "broken"):
            browser.get(base + "/feeds")
            browser.find_element(By.LINK_TEXT, name).click()
            there = f"/feeds/{name}"
            assert wait_until(lambda there=there: browser.current_url.endswith(there), 10)
            assert wait_until(lambda there=name: there in text_of(browser, "h1"), 10)
        browser.get(base + "/alerts")
        for link in [
            a.get_attribute("href")
            for a in browser.find_elements(By.CSS_SELECTOR, "article.alert h2 a")
        ]:
            browser.get(link)
            assert "Why it matched" in text_of(browser)
        browser.get(base + "/tester")
        browser.find_element(By.NAME, "text").send_keys("Kharkiv")
        browser.find_element(By.CSS_SELECTOR, "form.tester button").click()
        assert wait_until(lambda: "1 of 2 rules match" in text_of(browser), 10)
        # Health judged from the state alone: the daemon is gone, the last poll is recent.
        assert httpx.get(base + "/healthz").text == "ok\n"
    finally:
        assert web.stop() == 0
    assert hashlib.sha256(world.db.read_bytes()).hexdigest() == before
    wal = world.tmp / "w.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    after = sorted(p.name for p in world.tmp.iterdir() if p.name.startswith("w.db"))
    assert set(after) - set(siblings) <= {"w.db-shm", "w.db-wal"}


# -- both backends, without a browser -------------------------------------------------------


def test_the_console_on_either_backend_beside_a_daemon(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path, state_db: str | Path
) -> None:
    story = Story()
    story.add(1, "Old news")
    feed_server.routes["/news"] = Route(story.body())
    feed_server.routes["/wire"] = Route(Story().body())
    feed_server.routes["/broken"] = Route(b"gone", status=404)
    config = tmp_path / "config.yaml"
    write_config(config, state_db, feed_server, receiver)
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    web = None
    try:
        assert wait_until(lambda: feed_server.hits("/news") >= 2), daemon.log_text()
        story.add(2, "Kharkiv trams run again")
        feed_server.routes["/news"] = Route(story.body())
        assert len(receiver.wait_for(1)) == 1, daemon.log_text()
        counts = "SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM items)"
        port = free_port()
        web = WebProcess(config, port, tmp_path / "web.log")
        base = f"http://127.0.0.1:{port}"
        overview = httpx.get(base + "/")
        assert overview.status_code == 200 and "news" in overview.text
        alerts = httpx.get(base + "/alerts", params={"rule": "kharkiv"}).text
        assert "Kharkiv trams run again" in alerts and "<mark>Kharkiv</mark>" in alerts
        feed = httpx.get(base + "/feeds/broken").text
        assert "404" in feed and SECRET not in feed and KEY not in feed
        daemon.signal(signal.SIGTERM)
        written = state_sql(state_db, counts)
        page = httpx.get(base + "/tester").text
        token = page.split('name="token" value="')[1].split('"')[0]
        tested = httpx.post(base + "/tester", data={"text": "Kharkiv", "token": token})
        assert "1 of 2 rules match" in tested.text
        assert httpx.get(base + "/healthz").text == "ok\n"
        assert state_sql(state_db, counts) == written
    finally:
        daemon.stop()
        if web is not None:
            web.stop()
    assert "Traceback" not in (tmp_path / "web.log").read_text()


def test_healthz_fails_when_no_poll_finished_for_a_while(
    feed_server: FeedServer, receiver: Receiver, tmp_path: Path, state_db: str | Path
) -> None:
    config = tmp_path / "config.yaml"
    write_config(config, state_db, feed_server, receiver)
    store = Store.open(state_db)
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    for name in ("news", "wire", "broken"):
        store.commit_poll(PollDecision(name, "http://x/", long_ago, next_poll_at=long_ago))
    store.close()
    port = free_port()
    web = WebProcess(config, port, tmp_path / "web.log")
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 503
        assert health.text.startswith("stalled: no poll has finished for ")
        state_sql(
            state_db,
            "UPDATE feeds SET last_poll_at = :now",
            now=datetime.now(UTC).replace(tzinfo=None),
        )
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        web.stop()


# -- the store's reads for the console ------------------------------------------------------


def test_each_feed_keeps_only_its_latest_polls(store: Store) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(POLL_HISTORY + 7):
        at = start + timedelta(minutes=n)
        for feed in ("a", "b"):
            record = (
                PollRecord("new", 0.25, 200, 10, n)
                if n % 2
                else PollRecord("not-modified", 0.1, 304)
            )
            kind = "success" if n % 2 else "quiet"
            store.commit_poll(PollDecision(feed, "http://x/", at, kind=kind, history=record))
    polls = store.recent_polls("a")
    assert len(polls) == POLL_HISTORY
    assert polls[0].at == start + timedelta(minutes=POLL_HISTORY + 6)
    assert polls[0].poll == PollRecord("not-modified", 0.1, 304)
    assert polls[1].poll == PollRecord("new", 0.25, 200, 10, POLL_HISTORY + 5)
    assert len(store.recent_polls("b")) == POLL_HISTORY
    # Trimmed every PRUNE_EVERY polls of a feed, not at each: never more rows than that.
    for n in range(POLL_HISTORY + 7, 4 * POLL_HISTORY):
        at = start + timedelta(minutes=n)
        record = PollRecord("not-modified", 0.1, 304)
        store.commit_poll(PollDecision("a", "http://x/", at, kind="quiet", history=record))
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM polls WHERE feed = 'a'")).scalar()
        assert rows is not None and POLL_HISTORY <= rows < POLL_HISTORY + PRUNE_EVERY


def test_matches_per_day_count_each_item_once_per_rule(store: Store) -> None:
    from watcher.models import Alert

    now = datetime.now(UTC)
    alerts = [Alert("f", "i1", n, ("kharkiv", "war"), "t", "b") for n in ("hook", "pager")] + [
        Alert("f", "i2", "hook", ("kharkiv",), "t", "b")
    ]
    store.commit_poll(PollDecision("f", "http://x/", now, alerts=alerts))
    counts = store.matches_per_day(now - timedelta(days=1))
    assert counts == {"kharkiv": {now.date(): 2}, "war": {now.date(): 1}}
    assert [a.item_id for a in store.list_alerts(rule="war")] == ["i1", "i1"]
    assert len(store.list_alerts(rule="kharkiv", notifier="hook")) == 2
    assert store.list_alerts(rule="khar") == []
    assert store.alert_counts_by_notifier() == {"hook": {"pending": 2}, "pager": {"pending": 1}}


def test_charts_scale_to_the_busiest_day() -> None:
    from watcher.web.pages import charts

    today = date(2026, 3, 8)
    found = charts({"a": {today: 4, today - timedelta(days=6): 2}}, ["a", "b"], today)
    assert [c.rule for c in found] == ["a", "b"]
    heights = [b.height for b in found[0].bars]
    assert heights[-1] == 36.0 and heights[0] == 18.0 and heights[1:-1] == [0.0] * 5
    assert found[0].total == 6 and found[1].total == 0


# -- the pieces of security -----------------------------------------------------------------


def test_redaction_masks_credentials_and_secret_parameters() -> None:
    url = "https://bob:pw1234@feeds.example/x?api_key=abc&page=2&token=zz&Signature=q#s"
    assert (
        redact_url(url)
        == "https://***@feeds.example/x?api_key=***&page=2&token=***&Signature=***#s"
    )
    text = f"HTTP 500 from {url}; header X-Key: topsecretvalue"
    shown = redact_text(text, ["topsecretvalue"])
    assert "pw1234" not in shown and "abc" not in shown and "topsecretvalue" not in shown
    assert "page=2" in shown


def test_passwords_are_hashed_with_scrypt() -> None:
    stored = hash_password("s3cret")
    assert hash_problem(stored) is None and verify_password("s3cret", stored)
    assert not verify_password("S3cret", stored)
    assert hash_problem("s3cret") is not None
    assert hash_problem(
        "scrypt$1073741824$8$1$AAAAAAAAAAA=$" + base64.b64encode(b"x" * 32).decode()
    )
    with pytest.raises(ConfigError) as error:
        parse_config("web:\n  auth:\n    users:\n      bob: plaintext\n")
    assert "web.auth.users.bob: not a password hash" in str(error.value)


def test_form_tokens_and_hosts() -> None:
    tokens = FormTokens(lifetime=60)
    token = tokens.issue()
    assert tokens.valid(token) and not FormTokens().valid(token)  # another process's secret
    assert not tokens.valid(token.replace(".", ".0")) and not tokens.valid("")
    issued, mac = token.split(".")
    assert not tokens.valid(f"{int(issued) - 120}.{mac}")
    hosts = allowed_hosts("127.0.0.1", 8080, ["watcher.example.org"])
    assert {"127.0.0.1:8080", "localhost:8080", "watcher.example.org"} <= hosts
    assert "evil.example:8080" not in hosts
    everywhere = allowed_hosts("0.0.0.0", 80, [])
    assert "localhost:80" in everywhere and "0.0.0.0:80" not in everywhere


def test_only_a_daemon_with_a_console_imports_the_web_stack(tmp_path: Path) -> None:
    code = (
        "import pathlib, sys\n"
        "from watcher.config import parse_config\n"
        "from watcher.daemon import Daemon\n"
        "config = parse_config(sys.argv[1], file='c.yaml', base=pathlib.Path(sys.argv[2]))\n"
        "daemon = Daemon(config)\n"
        "if config.web is not None:\n"
        "    daemon._start_web()\n"
        "    daemon.web.stop()\n"
        "print(*(m for m in ('starlette', 'uvicorn', 'multipart') if m in sys.modules))\n"
        "daemon.store.close()\n"
    )

    def imported(config: str) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-c", code, f"state: w.db\n{config}", str(tmp_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        return set(out.stdout.split())

    assert imported("") == set()
    assert imported(f"web: {{listen: '127.0.0.1:{free_port()}'}}") >= {"starlette", "uvicorn"}
