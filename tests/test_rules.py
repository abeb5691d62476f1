"""Rule matching semantics (0.1) and the query language."""

from __future__ import annotations

import pytest

from watcher.config import EntityConfig, RuleConfig
from watcher.exceptions import QuerySyntaxError
from watcher.models import Item
from watcher.rules import RuleSet, parse_query
from watcher.text import html_to_text

ENTITIES = {"kharkiv": EntityConfig(aliases=("Kharkiv", "Kharkov", "Харків", "Харьков"))}


def rules(*specs: dict[str, object]) -> RuleSet:
    return RuleSet([RuleConfig.model_validate(s) for s in specs], ENTITIES)


KHARKIV = rules({"name": "kharkiv", "entities": ["kharkiv"]})


def fired(ruleset: RuleSet, title: str = "", *, summary: str = "", feed: str = "f") -> list[str]:
    item = Item(feed=feed, id="1", title=html_to_text(title), summary=html_to_text(summary))
    return [m.rule for m in ruleset.match(item)]


@pytest.mark.parametrize(
    "text",
    ["Shelling in Kharkov’s centre", "KHARKOV", "Kharkov, then Kyiv", "(Kharkov)", "Kharkov-based"],
)
def test_alias_matches_whole_words_in_any_case(text: str) -> None:
    assert fired(KHARKIV, text) == ["kharkiv"]


@pytest.mark.parametrize("text", ["Kharkovsky Street", "NotKharkov", "Kharkov2"])
def test_alias_does_not_match_inside_a_word(text: str) -> None:
    assert fired(KHARKIV, text) == []


def test_name_only_inside_a_link_attribute_does_not_match() -> None:
    assert fired(KHARKIV, summary='<a href="/tags/kharkiv" title="Kharkiv">read more</a>') == []


def test_entities_in_html_are_decoded_before_matching() -> None:
    assert fired(KHARKIV, summary="<p>Kharkiv&#8217;s mayor</p>") == ["kharkiv"]


@pytest.mark.parametrize("text", ["Обстріл у Харків вночі", "ХАРЬКОВ: новости"])
def test_cyrillic_alias_matches_cyrillic_text(text: str) -> None:
    assert fired(KHARKIV, text) == ["kharkiv"]


def test_match_names_the_alias_that_hit_and_marks_its_offsets() -> None:
    item = Item(feed="f", id="1", title="Big news", summary="Reports from Харків today.")
    (match,) = KHARKIV.match(item)
    assert match.terms == ("Харків",)
    (hit,) = match.hits
    assert (hit.field, item.summary[hit.start : hit.end]) == ("summary", "Харків")
    assert "Харків" in match.snippet


def test_phrase_matches_across_any_whitespace() -> None:
    rs = rules({"name": "r", "keywords": ["service disruption"]})
    assert fired(rs, "Service\n   disruption in eu-west") == ["r"]
    assert fired(rs, "Service, disruption") == []


def test_excluded_word_vetoes() -> None:
    rs = rules({"name": "outage", "keywords": ["outage"], "exclude": ["resolved"]})
    assert fired(rs, "Major outage in Kyiv") == ["outage"]
    assert fired(rs, "Outage resolved") == []


def test_query_semantics() -> None:
    rs = rules(
        {
            "name": "peace",
            "query": '("peace talks" OR "peace treaty" OR ceasefire) AND (Russia OR Ukraine) '
            "AND NOT football",
        }
    )
    assert fired(rs, "Ceasefire agreed, Ukraine says") == ["peace"]
    assert fired(rs, "Peace talks with Russia resume") == ["peace"]
    assert fired(rs, "Ceasefire in the Ukraine football league") == []
    assert fired(rs, "Ceasefire agreed") == []
    assert fired(rs, "peace and talks in Russia") == []


def test_words_side_by_side_mean_and() -> None:
    rs = rules({"name": "r", "query": "ceasefire Ukraine"})
    assert fired(rs, "Ukraine ceasefire") == ["r"]
    assert fired(rs, "ceasefire") == []


def test_query_entity_reference() -> None:
    rs = rules({"name": "r", "query": "@kharkiv AND ceasefire"})
    assert fired(rs, "Ceasefire in Kharkov") == ["r"]
    assert fired(rs, "Ceasefire in Kyiv") == []


def test_every_clause_of_a_rule_must_hold() -> None:
    rs = rules({"name": "r", "keywords": ["shelling"], "entities": ["kharkiv"]})
    assert fired(rs, "Shelling in Kharkiv") == ["r"]
    assert fired(rs, "Shelling in Kyiv") == []
    assert fired(rs, "Kharkiv concert") == []


def test_overlapping_rules_both_fire() -> None:
    rs = rules(
        {"name": "peace", "keywords": ["peace"]}, {"name": "talks", "keywords": ["peace talks"]}
    )
    assert fired(rs, "Peace talks begin") == ["peace", "talks"]


def test_feed_scope_by_name_or_tag() -> None:
    rs = rules({"name": "r", "keywords": ["outage"], "feeds": ["status"]})
    item = Item(feed="news", id="1", title="Outage")
    assert rs.match(item) == []
    assert [m.rule for m in rs.match(item, tags=["status"])] == ["r"]
    assert [m.rule for m in rs.match(Item(feed="status", id="1", title="Outage"))] == ["r"]


def test_a_rule_set_without_literals_matches_nothing() -> None:
    assert RuleSet([], {}).match(Item(feed="f", id="1", title="anything")) == []


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        ("", 0, "the query is empty"),
        ("ceasefire AND", 13, "expected a term, found the end of the query"),
        ('"peace talks', 0, 'unterminated quote: expected a closing "'),
        ("(a OR b", 7, "expected ')' to close the '(' at position 0"),
        ("a OR OR b", 5, "expected a term, found operator OR"),
        ("a ) b", 2, "unexpected ')' with no matching '('"),
        ('a ""', 2, "empty phrase"),
    ],
)
def test_query_errors_name_the_position(query: str, position: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert info.value.position == position
    assert info.value.reason == reason
    assert info.value.pointer().splitlines()[1] == " " * position + "^"


def test_lowercase_operators_are_words() -> None:
    rs = rules({"name": "r", "query": "salt and pepper"})
    assert fired(rs, "Salt and pepper") == ["r"]
    assert fired(rs, "salt pepper") == []
