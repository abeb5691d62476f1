"""A corpus of real feeds saved from the web, for bench/ and the differential tests.

Synthetic fleets flatter a parser: real feeds carry WordPress's post ids, Blogger's
images, YouTube's elements, odd encodings and broken markup (issue 18). Every feed here is
a file that a public repository keeps in its own tests or benchmarks, named with its
repository, path, pinned commit and licence in bench/corpus-sources.yaml, so anyone can
rebuild the corpus with git and check where each feed came from.

    python bench/corpus.py build     copy every listed feed into .corpus/full/ (ignored)
    python bench/corpus.py subset    rewrite tests/data/corpus/ from the "subset" list
    python bench/corpus.py stats     feeds by format and by source, sizes, items

The files are read from a local copy of each repository when one holds the pinned commit
(WATCHER_CORPUS_MIRRORS: folders of `owner+name/repo` or `owner+name.git` git dirs),
otherwise fetched at that commit into .corpus/git/ (WATCHER_CORPUS_GIT_BASE, GitHub by
default). Feeds are deduplicated by content hash: the first listed copy wins.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "bench" / "corpus-sources.yaml"
CORPUS_DIR = ROOT / ".corpus"
FULL_DIR = CORPUS_DIR / "full"
SUBSET_DIR = ROOT / "tests" / "data" / "corpus"
MANIFEST = "MANIFEST.yaml"
LICENSES = "LICENSES.txt"
SUBSET_ARCHIVE = "subset.tar.xz"
# Where this project's development machines keep snapshots of public repositories.
DEFAULT_MIRRORS = "/work/.mirror"
DEFAULT_GIT_BASE = "https://github.com/"

FORMATS = (
    "rss2.0",
    "rss0.9x",
    "rss",
    "rss1.0",
    "rss0.90",
    "atom1.0",
    "atom0.3",
    "json1.0",
    "json1.1",
)
# Licences under which a feed may go into the committed subset.
PERMISSIVE = frozenset({"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "CC-BY-4.0"})


class CorpusError(Exception):
    """The corpus cannot be built or read; the message names the source, file or commit."""


@dataclass(frozen=True)
class Feed:
    """One real feed: its bytes and where they came from."""

    name: str  # "<source>/<file>", unique in the corpus
    data: bytes
    format: str  # one of FORMATS
    repo: str  # owner/name of the public repository it was copied from
    path: str  # its path in that repository
    commit: str
    licence: str  # the repository's licence (SPDX); the text itself is its publisher's
    site: str  # the feed's own link, or "" if it names none


# --- formats ----------------------------------------------------------------------------

_PROLOG = re.compile(
    rb"\A(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)", re.DOTALL | re.IGNORECASE
)
_START = re.compile(rb"<([A-Za-z_][\w.:-]*)([^>]*)>")
_VERSION = re.compile(rb"""\bversion\s*=\s*["']([^"']*)["']""")


def sniff_format(data: bytes) -> str:
    """The feed's format from its root element (or JSON Feed version), not from its name.

    Raises CorpusError for a document that is no feed, so nothing unknown slips in."""
    text = data.removeprefix(b"\xef\xbb\xbf")
    if text.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = text.decode("utf-16").encode("utf-8")
    if text.lstrip()[:1] == b"{":
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CorpusError(f"not valid JSON: {exc}") from None
        version = doc.get("version", "") if isinstance(doc, dict) else ""
        if not isinstance(version, str) or "jsonfeed.org/version/1" not in version:
            raise CorpusError(f"a JSON document without a JSON Feed version ({version!r})")
        return "json1.1" if version.rstrip("/").endswith("1.1") else "json1.0"
    head = text[:65536]
    while True:
        prolog = _PROLOG.match(head)
        if not prolog or not prolog.group():
            break
        head = head[prolog.end() :]
    start = _START.match(head)
    if not start:
        raise CorpusError(f"no root element: {head[:60]!r}")
    tag, attrs = start.group(1).decode("ascii"), start.group(2)
    local = tag.rpartition(":")[2].lower()
    if local == "rss":
        version = _VERSION.search(attrs)
        if not version:
            return "rss"
        return "rss2.0" if version.group(1).startswith(b"2") else "rss0.9x"
    if local == "rdf":
        if b"purl.org/rss/1.0/" in head:
            return "rss1.0"
        if b"my.netscape.com/rdf/simple/0.9/" in head:
            return "rss0.90"
    if local == "feed":
        if b"http://www.w3.org/2005/Atom" in attrs:
            return "atom1.0"
        if b"purl.org/atom/ns#" in attrs:
            return "atom0.3"
    raise CorpusError(f"root element <{tag}> is no feed format known here")


# --- sources ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """One file that bench/corpus-sources.yaml asks for."""

    source: str
    repo: str
    commit: str
    licence: str
    licence_file: str  # the licence's text in that repository
    path: str
    url: str  # the address it was fetched from, when the source records it


def load_sources(path: Path = SOURCES) -> tuple[list[Wanted], list[str]]:
    """Every wanted file in the order listed, and the names chosen for the subset."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CorpusError(f"{path}: {exc}") from None
    wanted: list[Wanted] = []
    for i, src in enumerate(doc.get("sources") or []):
        where = f"{path}: sources[{i}]"
        keys = ("name", "repo", "commit", "licence", "licence_file", "files")
        missing = [k for k in keys if not src.get(k)]
        if missing:
            raise CorpusError(f"{where}: missing {', '.join(missing)}")
        if not re.fullmatch(r"[0-9a-f]{40}", str(src["commit"])):
            raise CorpusError(f"{where} ({src['name']}): commit must be 40 hex digits")
        for entry in src["files"]:
            item = entry if isinstance(entry, dict) else {"path": entry}
            wanted.append(
                Wanted(
                    source=str(src["name"]),
                    repo=str(src["repo"]),
                    commit=str(src["commit"]),
                    licence=str(src["licence"]),
                    licence_file=str(src["licence_file"]),
                    path=str(src.get("base", "")) + str(item["path"]),
                    url=str(item.get("url", "")),
                )
            )
    return wanted, [str(n) for n in doc.get("subset") or []]


_EXT = {"json1.0": ".json", "json1.1": ".json"}


def corpus_name(w: Wanted, fmt: str) -> str:
    """A readable unique name: the source, then the file's own name (or, for files named by
    a hash, the address the feed was fetched from)."""
    if w.url:
        parts = urlsplit(w.url)
        where = parts.netloc + parts.path + (f"-{parts.query}" if parts.query else "")
        base = re.sub(r"[^A-Za-z0-9.-]+", "-", where).strip("-")[:80]
        if not base.endswith((".xml", ".rss", ".atom", ".rdf", ".json")):
            base += _EXT.get(fmt, ".xml")
    else:
        base = w.path.rsplit("/", 1)[-1]
    return f"{w.source}/{base}"


# --- git --------------------------------------------------------------------------------


def _git(git_dir: Path, *args: str) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, check=False
    )
    if proc.returncode:
        raise CorpusError(f"git {' '.join(args)} in {git_dir}: {proc.stderr.decode().strip()}")
    return proc.stdout


def _has_commit(git_dir: Path, commit: str) -> bool:
    if not git_dir.is_dir():
        return False
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def mirror_roots() -> list[Path]:
    value = os.environ.get("WATCHER_CORPUS_MIRRORS", DEFAULT_MIRRORS)
    return [Path(p) for p in value.split(os.pathsep) if p]


def git_dir_for(repo: str, commit: str, cache: Path, log: Callable[[str], None]) -> Path:
    """A git dir holding ``commit`` of ``repo``: a local copy if one has it, else a shallow
    fetch of that one commit into ``cache``."""
    key = repo.replace("/", "+")
    own = cache / f"{key}.git"
    candidates = [own]
    for root in mirror_roots():
        candidates += [root / key / "repo", root / f"{key}.git", root / key]
    for candidate in candidates:
        if _has_commit(candidate, commit):
            return candidate
    url = os.environ.get("WATCHER_CORPUS_GIT_BASE", DEFAULT_GIT_BASE).rstrip("/") + f"/{repo}.git"
    log(f"fetching {repo} at {commit[:12]} from {url}")
    own.mkdir(parents=True, exist_ok=True)
    _git(own, "init", "--bare", "--quiet")
    try:
        _git(own, "fetch", "--quiet", "--depth=1", "--no-tags", url, commit)
    except CorpusError as exc:
        raise CorpusError(
            f"{repo}: commit {commit} is in no local copy ({', '.join(map(str, candidates))}) "
            f"and could not be fetched: {exc}"
        ) from None
    return own


# --- manifests and archives -------------------------------------------------------------


def read_manifest(path: Path) -> list[dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CorpusError(f"{path}: {exc}") from None
    feeds = doc.get("feeds") if isinstance(doc, dict) else None
    if not isinstance(feeds, list):
        raise CorpusError(f"{path}: no 'feeds' list")
    return feeds


def write_manifest(path: Path, entries: list[dict[str, Any]], header: str) -> None:
    body = yaml.safe_dump(
        {"feeds": entries},
        sort_keys=False,
        allow_unicode=True,
        width=1000,
        default_flow_style=False,
    )
    path.write_text(header + body, encoding="utf-8")


def _feed(entry: dict[str, Any], data: bytes) -> Feed:
    return Feed(
        name=entry["file"],
        data=data,
        format=entry["format"],
        repo=entry["repo"],
        path=entry["path"],
        commit=entry["commit"],
        licence=entry["licence"],
        site=entry.get("site", ""),
    )


def read_archive(archive: Path) -> dict[str, bytes]:
    """Every regular file in a .tar.xz archive, by name."""
    try:
        with tarfile.open(archive, "r:xz") as tar:
            out: dict[str, bytes] = {}
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    out[member.name] = handle.read()
            return out
    except (OSError, tarfile.TarError, lzma.LZMAError) as exc:
        raise CorpusError(f"{archive}: {exc}") from None


def write_archive(archive: Path, files: dict[str, bytes]) -> None:
    """A reproducible .tar.xz: sorted names, no owners, no dates."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tar.addfile(info, io.BytesIO(files[name]))
    archive.write_bytes(lzma.compress(raw.getvalue(), preset=9 | lzma.PRESET_EXTREME))


# --- building ---------------------------------------------------------------------------


def describe(data: bytes, fmt: str) -> tuple[str, int]:
    """The feed's own link and how many entries it has (feedparser's reading; JSON Feed's
    items, which feedparser 6.0 does not read)."""
    if fmt.startswith("json"):
        doc = json.loads(data.removeprefix(b"\xef\xbb\xbf"))
        return str(doc.get("home_page_url") or ""), len(doc.get("items") or [])
    import feedparser

    parsed = feedparser.parse(data)
    return str(parsed.feed.get("link") or ""), len(parsed.entries)


def licence_notices(
    wanted: Iterable[Wanted], git_dirs: dict[tuple[str, str], Path], include: set[str]
) -> str:
    """The licence text of every repository in ``include``, as each asks to be kept with
    copies of what it distributes."""
    parts = [
        "The feeds in this corpus were copied from the repositories below, which distribute\n"
        "them under these licences. The feeds' texts remain their publishers'.\n"
    ]
    done: set[str] = set()
    for w in wanted:
        if w.repo not in include or w.repo in done:
            continue
        done.add(w.repo)
        try:
            text = _git(
                git_dirs[(w.repo, w.commit)], "cat-file", "blob", f"{w.commit}:{w.licence_file}"
            )
        except CorpusError as exc:
            raise CorpusError(f"{w.source}: licence_file {w.licence_file}: {exc}") from None
        title = f"{w.repo} at {w.commit}, {w.licence_file} ({w.licence})"
        parts.append(f"\n{'=' * 8} {title} {'=' * 8}\n\n{text.decode('utf-8').strip()}\n")
    return "".join(parts)


MANIFEST_HEADER = """\
# The full corpus of real feeds, built by `python bench/corpus.py build` from
# bench/corpus-sources.yaml. Each feed: its file here, format, the repository, path and
# commit it was copied from, that repository's licence, the feed's own site link (and
# the address it was fetched from, when the source says), sha256, size and entries.
# The source repositories' licence texts are in LICENSES.txt beside this file.
"""


def build(
    dest: Path = FULL_DIR,
    sources: Path = SOURCES,
    cache: Path = CORPUS_DIR / "git",
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Copy every listed feed into ``dest`` (replaced whole) and write its manifest."""
    wanted, _ = load_sources(sources)
    entries: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    seen: dict[str, str] = {}
    git_dirs: dict[tuple[str, str], Path] = {}
    for w in wanted:
        key = (w.repo, w.commit)
        if key not in git_dirs:
            git_dirs[key] = git_dir_for(w.repo, w.commit, cache, log)
        try:
            data = _git(git_dirs[key], "cat-file", "blob", f"{w.commit}:{w.path}")
        except CorpusError as exc:
            raise CorpusError(f"{w.source}: {w.repo}@{w.commit[:12]}:{w.path}: {exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            log(f"duplicate: {w.repo}:{w.path} is {seen[digest]}")
            continue
        try:
            fmt = sniff_format(data)
        except CorpusError as exc:
            raise CorpusError(f"{w.source}: {w.repo}:{w.path}: {exc}") from None
        name = corpus_name(w, fmt)
        if name in files:
            raise CorpusError(f"{w.source}: two different files would both be {name}")
        site, items = describe(data, fmt)
        seen[digest] = name
        files[name] = data
        entry: dict[str, Any] = {
            "file": name,
            "format": fmt,
            "repo": w.repo,
            "path": w.path,
            "commit": w.commit,
            "licence": w.licence,
            "site": site,
        }
        if w.url:
            entry["url"] = w.url
        entry.update(sha256=digest, bytes=len(data), items=items)
        entries.append(entry)
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, data in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)
    write_manifest(tmp / MANIFEST, entries, MANIFEST_HEADER)
    notices = licence_notices(wanted, git_dirs, {e["repo"] for e in entries})
    (tmp / LICENSES).write_text(notices, encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return entries


def ensure_full(dest: Path = FULL_DIR, log: Callable[[str], None] = print) -> Path:
    """The full corpus, built first if missing (one builder at a time: test workers and
    benchmarks may all ask at once)."""
    if (dest / MANIFEST).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / MANIFEST).is_file():
            build(dest, log=log)
    return dest


def full(dest: Path = FULL_DIR, log: Callable[[str], None] = print) -> Iterator[Feed]:
    """Every feed of the full corpus (built if missing), in manifest order."""
    root = ensure_full(dest, log)
    for entry in read_manifest(root / MANIFEST):
        try:
            data = (root / entry["file"]).read_bytes()
        except OSError as exc:
            raise CorpusError(f"{root / MANIFEST}: {entry['file']}: {exc}") from None
        yield _feed(entry, data)


def subset(directory: Path = SUBSET_DIR) -> Iterator[Feed]:
    """Every feed of the committed subset, in manifest order."""
    files = read_archive(directory / SUBSET_ARCHIVE)
    for entry in read_manifest(directory / MANIFEST):
        if entry["file"] not in files:
            raise CorpusError(f"{directory / MANIFEST}: {entry['file']} is not in the archive")
        yield _feed(entry, files[entry["file"]])


SUBSET_HEADER = """\
# The committed subset of the corpus of real feeds (subset.tar.xz beside this file), for
# the default test run. Written by `python bench/corpus.py subset` from the "subset" list
# in bench/corpus-sources.yaml; only feeds from permissively licensed repositories, whose
# licence texts are in LICENSES.txt beside this file. Each feed: its name in the archive,
# format, the repository, path and commit it was copied from, that repository's licence,
# the feed's own site link, sha256, size, entries.
"""


def make_subset(
    directory: Path = SUBSET_DIR, full_dir: Path = FULL_DIR, cache: Path = CORPUS_DIR / "git"
) -> list[dict[str, Any]]:
    """Write the subset's archive, manifest and licence texts from the full corpus."""
    wanted, names = load_sources()
    root = ensure_full(full_dir)
    by_name = {e["file"]: e for e in read_manifest(root / MANIFEST)}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise CorpusError(f"{SOURCES}: subset names not in the full corpus: {unknown}")
    entries = [by_name[n] for n in names]
    bad = [e["file"] for e in entries if e["licence"] not in PERMISSIVE]
    if bad:
        raise CorpusError(f"{SOURCES}: subset feeds without a permissive licence: {bad}")
    directory.mkdir(parents=True, exist_ok=True)
    write_archive(directory / SUBSET_ARCHIVE, {n: (root / n).read_bytes() for n in names})
    write_manifest(directory / MANIFEST, entries, SUBSET_HEADER)
    repos = {e["repo"] for e in entries}
    pins = {(w.repo, w.commit) for w in wanted if w.repo in repos}
    git_dirs = {pin: git_dir_for(*pin, cache, print) for pin in pins}
    (directory / LICENSES).write_text(licence_notices(wanted, git_dirs, repos), encoding="utf-8")
    return entries


# --- command line -----------------------------------------------------------------------


def _table(title: str, counts: Iterable[tuple[str, tuple[int, int, int]]]) -> None:
    print(f"\n{title:<52} {'feeds':>6} {'items':>7} {'MB':>7}")
    for key, (n, items, size) in counts:
        print(f"{key:<52} {n:>6} {items:>7} {size / 1e6:>7.2f}")


def stats(entries: list[dict[str, Any]]) -> None:
    keys: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
        ("format", lambda e: str(e["format"])),
        ("source", lambda e: f"{str(e['file']).split('/')[0]} ({e['repo']})"),
        ("licence", lambda e: str(e["licence"])),
    )
    for title, key in keys:
        acc: dict[str, list[int]] = {}
        for e in entries:
            row = acc.setdefault(key(e), [0, 0, 0])
            row[0] += 1
            row[1] += e["items"]
            row[2] += e["bytes"]
        rows = sorted(acc.items(), key=lambda kv: -kv[1][0])
        _table(title, [(k, (v[0], v[1], v[2])) for k, v in rows])
    total = Counter({"feeds": len(entries)})
    total["items"] = sum(e["items"] for e in entries)
    total["bytes"] = sum(e["bytes"] for e in entries)
    print(f"\ntotal: {total['feeds']} feeds, {total['items']} items, {total['bytes'] / 1e6:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=("build", "subset", "stats"))
    parser.add_argument("--which", choices=("full", "subset"), default="full", help="for stats")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            entries = build()
            print(f"{len(entries)} feeds in {FULL_DIR}")
        elif args.command == "subset":
            entries = make_subset()
            size = (SUBSET_DIR / SUBSET_ARCHIVE).stat().st_size
            print(f"{len(entries)} feeds in {SUBSET_DIR / SUBSET_ARCHIVE} ({size / 1e6:.2f} MB)")
        elif args.which == "subset":
            stats(read_manifest(SUBSET_DIR / MANIFEST))
        else:
            stats(read_manifest(ensure_full() / MANIFEST))
    except CorpusError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
