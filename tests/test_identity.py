"""Item identity: canonical links, title keys, and the per-item renumbering judgement.

The classification cases are golden data (tests/data/identity/cases.yaml): what a feed
had seen, one document, and which items are new. The daemon-level proof of the same
promises is in tests/test_new_items.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.identity import (
    Known,
    Seen,
    canonical_link,
    classify,
    clean_link,
    item_keys,
    one_per_identity,
    primary_identity,
    title_key,
)
from watcher.models import Item

CASES = yaml.safe_load(
    (Path(__file__).parent / "data" / "identity" / "cases.yaml").read_text(encoding="utf-8")
)


def _item(spec: Mapping[str, Any] | str) -> Item:
    if isinstance(spec, str):
        return Item(feed="f", id=spec, title=f"Story {spec}", link=f"https://x.example.org/{spec}")
    published = spec.get("published")
    return Item(
        feed="f",
        id=spec["id"],
        title=spec.get("title", ""),
        link=spec.get("link", ""),
        published=datetime.fromisoformat(published).replace(tzinfo=UTC) if published else None,
    )


def _known(seen: list[Mapping[str, Any]]) -> Known:
    """What the store would answer: every seen item, by its link key and title key."""
    by_link: dict[str, list[Seen]] = {}
    by_title: dict[str, list[Seen]] = {}
    for spec in seen:
        item = _item(spec)
        row = Seen(item.id, spec.get("same_as") or item.id, item_keys(item))
        if row.keys.link:
            by_link.setdefault(row.keys.link, []).append(row)
        if row.keys.title:
            by_title.setdefault(row.keys.title, []).append(row)
    return Known(frozenset(str(s["id"]) for s in seen), by_link, by_title)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_classification(case: Mapping[str, Any]) -> None:
    doc = [_item(spec) for spec in case["doc"]]
    judged = classify(doc, _known(case["seen"]))
    renumbered = {item.id: seen.item_id for item, seen in judged.renumbered}
    known = set(case.get("known", ()))
    expected_new = [
        i.id for i in doc if i.id not in case.get("renumbered", {}) and i.id not in known
    ]
    assert renumbered == case.get("renumbered", {})
    assert {i.id for i in judged.known} == known
    assert [i.id for i in judged.new] == expected_new


@pytest.mark.parametrize(
    ("link", "key", "fragment"),
    [
        ("http://news.example.org/a", "news.example.org/a", ""),
        ("https://www.news.example.org/a/", "news.example.org/a", ""),
        ("HTTPS://News.Example.org:443/a", "news.example.org/a", ""),
        ("https://news.example.org:8443/a", "news.example.org:8443/a", ""),
        ("https://news.example.org/a?utm_source=rss&id=7&ref=rss", "news.example.org/a?id=7", ""),
        ("https://news.example.org/a?b=2&a=1", "news.example.org/a?a=1&b=2", ""),
        ("https://news.example.org/a?fbclid=x&gclid=y&mc_cid=z", "news.example.org/a", ""),
        ("https://news.example.org/a#comments", "news.example.org/a", ""),
        ("https://news.example.org/a#respond", "news.example.org/a", ""),
        ("https://news.example.org/a#xtor=RSS-3208", "news.example.org/a", ""),
        ("https://live.example.org/blog#post-123", "live.example.org/blog", "post-123"),
        ("", "", ""),
        ("urn:uuid:1234", "urn:uuid:1234", ""),  # not a web link: kept as it is
    ],
)
def test_canonical_link(link: str, key: str, fragment: str) -> None:
    assert canonical_link(link) == (key, fragment)


def test_title_key_ignores_case_accents_punctuation_and_spacing() -> None:
    assert title_key("Kyïv:  talks “resume” — TODAY!") == title_key("kyiv talks resume today")
    assert title_key("Харків") == "харків"
    assert title_key("") == ""


def test_primary_identity_is_unchanged_for_guids_and_links() -> None:
    # Upgrading must not renumber anyone: the primary identity of an item with a guid or
    # a link is what it always was.
    assert primary_identity(" urn:1 ", "http://x/a", "t", "c") == "urn:1"
    assert primary_identity("", "http://x/a?utm_source=x&id=1", "t", "c") == "http://x/a?id=1"
    assert clean_link("http://x/a?ref=rss") == "http://x/a?ref=rss"  # only the old list


def _entry(n: int, link: str = "https://status.example.org/", **extra: Any) -> Item:
    return Item(feed="f", id=link, title=f"Incident {n}", link=link, **extra)


def test_entries_sharing_a_web_address_are_distinct_and_keep_their_ids_poll_after_poll() -> None:
    first = one_per_identity([_entry(1)])
    assert [i.id for i in first] == ["https://status.example.org/"]  # alone: the address
    second = one_per_identity([_entry(2), _entry(1)])  # newest first, undated
    assert [i.title for i in second] == ["Incident 2", "Incident 1"]
    assert second[1].id == first[0].id  # the oldest keeps the address
    assert second[0].id.startswith("https://status.example.org/#entry-")
    third = one_per_identity([_entry(3), _entry(2), _entry(1)])
    assert third[1].id == second[0].id and third[2].id == first[0].id
    assert len({i.id for i in third}) == 3


def test_dated_entries_sharing_an_address_keep_the_address_for_the_oldest() -> None:
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    items = one_per_identity(
        [_entry(2, published=at), _entry(1, published=at.replace(hour=8)), _entry(2, published=at)]
    )
    assert [(i.title, i.id) for i in items][1] == ("Incident 1", "https://status.example.org/")
    assert len(items) == 2  # the repeated entry is one item
    again = one_per_identity([_entry(2), _entry(2), _entry(1)])
    assert [i.title for i in again] == ["Incident 2", "Incident 1"]
    assert again[0].id.startswith("https://status.example.org/#entry-")


def test_entries_sharing_a_guid_are_one_item() -> None:
    items = one_per_identity(
        [Item(feed="f", id="urn:1", title="Edited"), Item(feed="f", id="urn:1", title="Draft")]
    )
    assert [i.title for i in items] == ["Edited"]
