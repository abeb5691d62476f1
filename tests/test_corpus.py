"""The corpus of real feeds (docs/corpus.md): the committed subset is what its manifest
says, every feed in it is a feed feedparser reads entries from, and bench/corpus.py builds
a corpus from pinned git commits. A check of the corpus, not of watcher.

WATCHER_CORPUS=full runs the per-feed checks over the full corpus instead of the subset."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml
from corpus import (
    FORMATS,
    LICENSES,
    MANIFEST,
    PERMISSIVE,
    SUBSET_ARCHIVE,
    SUBSET_DIR,
    CorpusError,
    Feed,
    build,
    feed_id,
    load_sources,
    read_archive,
    read_manifest,
    selected,
    sniff_format,
)

ENTRIES = read_manifest(SUBSET_DIR / MANIFEST)
FEEDS = selected()

# feedparser's name for each format: a second opinion on the manifest's.
FEEDPARSER_VERSIONS = {
    "rss20": "rss2.0",
    "rss091u": "rss0.9x",
    "rss091n": "rss0.9x",
    "rss092": "rss0.9x",
    "rss093": "rss0.9x",
    "rss094": "rss0.9x",
    "rss": "rss",
    "rss10": "rss1.0",
    "rss090": "rss0.90",
    "atom10": "atom1.0",
    "atom03": "atom0.3",
}


def test_manifest_lists_exactly_the_archive() -> None:
    files = read_archive(SUBSET_DIR / SUBSET_ARCHIVE)
    assert sorted(e["file"] for e in ENTRIES) == sorted(files)
    for entry in ENTRIES:
        data = files[entry["file"]]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
        assert len(data) == entry["bytes"], entry["file"]


def test_subset_is_varied_small_and_permissively_licensed() -> None:
    assert len(ENTRIES) >= 30
    for entry in ENTRIES:
        for key in ("file", "format", "repo", "path", "licence", "site"):
            assert entry.get(key), f"{entry.get('file')}: no {key}"
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), entry["file"]
        assert entry["licence"] in PERMISSIVE, entry["file"]
        assert entry["format"] in FORMATS, entry["file"]
    formats = Counter(e["format"] for e in ENTRIES)
    assert formats["rss2.0"] >= 10 and formats["atom1.0"] >= 10, formats
    assert formats["rss1.0"] >= 3 and formats["json1.0"] + formats["json1.1"] >= 3, formats
    assert len({e["repo"] for e in ENTRIES}) >= 8
    assert (SUBSET_DIR / SUBSET_ARCHIVE).stat().st_size < 1_500_000


def test_subset_keeps_the_licence_of_every_repository_it_copies_from() -> None:
    notices = (SUBSET_DIR / LICENSES).read_text(encoding="utf-8")
    sections = re.findall(r"^=+ (\S+) at ([0-9a-f]{40}), \S+ \((\S+)\) =+$", notices, re.MULTILINE)
    assert sorted(sections) == sorted({(e["repo"], e["commit"], e["licence"]) for e in ENTRIES})
    for body in re.split(r"^=+ .* =+$", notices, flags=re.MULTILINE)[1:]:
        assert "Copyright" in body or "Apache License" in body, body[:200]


def test_subset_comes_from_the_pinned_sources() -> None:
    """Every committed feed is listed in bench/corpus-sources.yaml with the same commit and
    licence, so `python bench/corpus.py subset` rebuilds it and anyone can check its origin."""
    wanted, names = load_sources()
    assert names == [e["file"] for e in ENTRIES]
    by_origin = {(w.repo, w.path): w for w in wanted}
    for entry in ENTRIES:
        w = by_origin[(entry["repo"], entry["path"])]
        assert (w.commit, w.licence) == (entry["commit"], entry["licence"]), entry["file"]
        assert entry["file"].startswith(f"{w.source}/")


@pytest.mark.parametrize("feed", FEEDS, ids=feed_id)
def test_feed_is_the_format_claimed_and_has_entries(feed: Feed) -> None:
    assert sniff_format(feed.data) == feed.format
    if feed.format.startswith("json"):
        doc = json.loads(feed.data)
        version = {"json1.0": "/version/1", "json1.1": "/version/1.1"}[feed.format]
        assert doc["version"].rstrip("/").endswith(version)
        assert doc["items"], feed.name
        return
    parsed = feedparser.parse(feed.data)
    assert FEEDPARSER_VERSIONS.get(parsed.version) == feed.format, parsed.version
    assert parsed.entries, feed.name


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>', "rss2.0"),
        (b"\xef\xbb\xbf<rss version='0.91'><channel/></rss>", "rss0.9x"),
        (b"<rss><channel/></rss>", "rss"),
        (
            b'<?xml version="1.0"?>\n<!-- made by hand -->\n<?xml-stylesheet href="x.xsl"?>\n'
            b'<!DOCTYPE rss [<!ENTITY nbsp "&#160;">]>\n<rss version="2.0"/>',
            "rss2.0",
        ),
        (
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            b' xmlns="http://purl.org/rss/1.0/"><channel/></rdf:RDF>',
            "rss1.0",
        ),
        (
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
            b' xmlns="http://my.netscape.com/rdf/simple/0.9/"><channel/></rdf:RDF>',
            "rss0.90",
        ),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>', "atom1.0"),
        (b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"/>', "atom0.3"),
        (
            '<?xml version="1.0" encoding="utf-16"?><feed xmlns="http://www.w3.org/2005/Atom"/>'.encode(
                "utf-16"
            ),
            "atom1.0",
        ),
        (b'{"version": "https://jsonfeed.org/version/1", "items": []}', "json1.0"),
        (b' {"version": "https://jsonfeed.org/version/1.1", "items": []}', "json1.1"),
    ],
)
def test_sniff_format_reads_the_root_element(document: bytes, expected: str) -> None:
    assert sniff_format(document) == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<html><body><feed xmlns='http://www.w3.org/2005/Atom'/></body></html>", "<html>"),
        (b'{"rss": {"version": "2.0"}}', "without a JSON Feed version"),
        (b'{"version": "https://jsonfeed.org/version/1", ', "not valid JSON"),
        (b"plain text", "no root element"),
    ],
)
def test_sniff_format_refuses_what_is_no_feed(document: bytes, message: str) -> None:
    with pytest.raises(CorpusError, match=re.escape(message)):
        sniff_format(document)


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=corpus", "-c", "user.email=corpus@localhost", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def upstream(tmp_path: Path) -> dict[str, Any]:
    """A repository of real feeds from the subset: a first commit (the pinned one) with
    three feeds and a byte-identical copy of one, then a commit that rewrites a feed."""
    files = read_archive(SUBSET_DIR / SUBSET_ARCHIVE)
    atom, rss, rdf = "feedbin/atom.xml", "feed-rs/rss_2.0_kdist.xml", "feed-rs/rss_1.0_debian.xml"
    work = tmp_path / "work"
    (work / "feeds").mkdir(parents=True)
    _git(work, "init", "-q")
    for name, target in ((atom, "a.atom"), (rss, "b.rss"), (rdf, "c.rdf"), (rss, "copy.rss")):
        (work / "feeds" / target).write_bytes(files[name])
    (work / "LICENSE").write_text("Copyright (c) the feeds' example\n")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "feeds")
    pinned = _git(work, "rev-parse", "HEAD")
    (work / "feeds" / "b.rss").write_bytes(b'<rss version="2.0"><channel/></rss>')
    _git(work, "commit", "-q", "-am", "later")
    remote = tmp_path / "remote" / "example" / "feeds.git"
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(remote))
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "example",
                        "repo": "example/feeds",
                        "commit": pinned,
                        "licence": "MIT",
                        "licence_file": "LICENSE",
                        "base": "feeds/",
                        "files": [
                            "a.atom",
                            "b.rss",
                            "copy.rss",
                            {"path": "c.rdf", "url": "https://www.debian.org/News/news"},
                        ],
                    }
                ]
            }
        )
    )
    return {
        "sources": sources,
        "pinned": pinned,
        "files": files,
        "atom": atom,
        "rss": rss,
        "rdf": rdf,
    }


def _built(dest: Path) -> dict[str, dict[str, Any]]:
    return {e["file"]: e for e in read_manifest(dest / MANIFEST)}


def test_build_takes_pinned_files_from_a_local_copy_and_drops_duplicates(
    upstream: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirrors = tmp_path / "mirrors"
    _git(
        tmp_path,
        "clone",
        "-q",
        "--bare",
        str(tmp_path / "remote/example/feeds.git"),
        str(mirrors / "example+feeds.git"),
    )
    monkeypatch.setenv("WATCHER_CORPUS_MIRRORS", str(mirrors))
    monkeypatch.setenv("WATCHER_CORPUS_GIT_BASE", str(tmp_path / "nowhere"))
    log: list[str] = []
    dest = tmp_path / "full"
    build(dest, upstream["sources"], tmp_path / "cache", log.append)
    entries = _built(dest)
    assert sorted(entries) == [
        "example/a.atom",
        "example/b.rss",
        "example/www.debian.org-News-news.xml",
    ]
    assert log == ["duplicate: example/feeds:feeds/copy.rss is example/b.rss"]
    files = upstream["files"]
    assert (dest / "example/b.rss").read_bytes() == files[upstream["rss"]]
    rss = entries["example/b.rss"]
    assert rss["format"] == "rss2.0" and rss["commit"] == upstream["pinned"]
    assert (rss["repo"], rss["path"], rss["licence"]) == ("example/feeds", "feeds/b.rss", "MIT")
    assert rss["sha256"] == hashlib.sha256(files[upstream["rss"]]).hexdigest()
    assert rss["site"] == "http://www.kernel.org" and rss["items"] == 1
    rdf = entries["example/www.debian.org-News-news.xml"]
    assert rdf["format"] == "rss1.0" and rdf["url"] == "https://www.debian.org/News/news"
    assert entries["example/a.atom"]["format"] == "atom1.0"
    notices = (dest / LICENSES).read_text()
    assert f"example/feeds at {upstream['pinned']}, LICENSE (MIT)" in notices
    assert "Copyright (c) the feeds' example" in notices
    assert not (tmp_path / "cache").exists()


def test_build_fetches_the_pinned_commit_when_no_local_copy_has_it(
    upstream: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHER_CORPUS_MIRRORS", str(tmp_path / "no-mirrors"))
    monkeypatch.setenv("WATCHER_CORPUS_GIT_BASE", (tmp_path / "remote").as_uri())
    log: list[str] = []
    dest = tmp_path / "full"
    build(dest, upstream["sources"], tmp_path / "cache", log.append)
    assert log[0].startswith(f"fetching example/feeds at {upstream['pinned'][:12]}")
    assert (dest / "example/b.rss").read_bytes() == upstream["files"][upstream["rss"]]
    assert len(_built(dest)) == 3
    # A second build finds the commit in its own cache and fetches nothing.
    log.clear()
    build(dest, upstream["sources"], tmp_path / "cache", log.append)
    assert not any(line.startswith("fetching") for line in log)


def test_build_names_the_repository_it_cannot_reach(
    upstream: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHER_CORPUS_MIRRORS", str(tmp_path / "no-mirrors"))
    monkeypatch.setenv("WATCHER_CORPUS_GIT_BASE", (tmp_path / "nowhere").as_uri())
    with pytest.raises(
        CorpusError, match=r"example/feeds: commit [0-9a-f]{40} is in no local copy"
    ):
        build(tmp_path / "full", upstream["sources"], tmp_path / "cache", lambda _: None)
    assert not (tmp_path / "full").exists()
