"""Planning and rendering alerts. Pure: decides and formats, never sends.

One item that matches several rules gives one message per notifier, naming every
rule that notifier is meant to hear about. Messages are rendered for plain text,
Markdown or HTML with a notifier's own sandboxed Jinja2 templates, or with the
defaults here (written out as Python, which render exactly what their Jinja2 source
in DEFAULT_TITLE and DEFAULT_BODY renders: tests hold the two together, and Jinja2 is
imported only for a notifier that has a template of its own). Feed text is only ever
*data* in a template, escaped for the target format, so a feed cannot inject markup,
links or template code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from markupsafe import Markup, escape

from watcher.models import PRIORITIES, Alert, Item, Match, Priority
from watcher.rules.engine import settle

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

log = logging.getLogger(__name__)

MAX_TITLE = 250
FORMATS = ("text", "markdown", "html")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<])")


def markdown_escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def safe_link(link: str) -> str:
    """The link if it is http(s), else nothing: a feed must not hand out javascript: links."""
    return link if urlsplit(link.strip()).scheme in ("http", "https") else ""


def _finalize(fmt: str) -> Callable[[Any], Any]:
    def finalize(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, Markup) or fmt == "text":
            return value
        return Markup(markdown_escape(str(value))) if fmt == "markdown" else escape(value)

    return finalize


@cache
def _environment(fmt: str | None) -> ImmutableSandboxedEnvironment:
    """The sandbox that renders a notifier's own templates in ``fmt`` (None: titles, plain).

    Imported here, on first use: Jinja2 costs about 20 ms and 3 MiB to import, which a
    config without templates of its own never needs (docs/benchmarks.md).
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if fmt is None:
        return ImmutableSandboxedEnvironment(autoescape=False)
    return ImmutableSandboxedEnvironment(
        autoescape=fmt == "html", finalize=_finalize(fmt), keep_trailing_newline=False
    )


DEFAULT_TITLE = (
    "{% if priority in ('high', 'urgent') %}{{ priority|upper }} {% endif %}"
    "[{{ rules|join(', ') }}] {{ item.title }}"
)
DEFAULT_BODY = {
    "text": (
        "{{ item.title }}\n"
        "{% if item.link %}{{ item.link }}\n{% endif %}"
        "Feed: {{ item.feed }}\n"
        "{% if also %}Also in: {{ also|join(', ') }}\n{% endif %}"
        "{% if item.published %}Published: {{ item.published }}\n{% endif %}"
        "Matched: {% for m in matches %}{{ m.rule }}{% if m.terms %}: {{ m.terms|join(', ') }}"
        "{% endif %}{% if not loop.last %}; {% endif %}{% endfor %}"
        "{% if entities %}\nEntities: {{ entities|join(', ') }}{% endif %}"
        "{% if snippet %}\n\n{{ snippet }}{% endif %}"
    ),
    "markdown": (
        "{% if item.link %}**[{{ item.title }}]({{ link_md }})**{% else %}**{{ item.title }}**"
        "{% endif %}\n"
        "{{ item.feed }}{% if also %} (also in {{ also|join(', ') }}){% endif %}"
        "{% if item.published %} · {{ item.published }}{% endif %}\n"
        "{% for m in matches %}*{{ m.rule }}*{% if m.terms %}: {{ m.terms|join(', ') }}{% endif %}"
        "{% if not loop.last %}; {% endif %}{% endfor %}"
        "{% if entities %}\n{{ entities|join(', ') }}{% endif %}"
        "{% if snippet %}\n\n{{ snippet }}{% endif %}"
    ),
    "html": (
        '<p><b>{% if item.link %}<a href="{{ item.link }}">{{ item.title }}</a>'
        "{% else %}{{ item.title }}{% endif %}</b><br>"
        "{{ item.feed }}{% if also %} (also in {{ also|join(', ') }}){% endif %}"
        "{% if item.published %} · {{ item.published }}{% endif %}<br>"
        "{% for m in matches %}<i>{{ m.rule }}</i>{% if m.terms %}: {{ m.terms|join(', ') }}"
        "{% endif %}{% if not loop.last %}; {% endif %}{% endfor %}"
        "{% if entities %}<br>{{ entities|join(', ') }}{% endif %}</p>"
        "{% if snippet %}<p>{{ snippet }}</p>{% endif %}"
    ),
}


@dataclass(frozen=True)
class Style:
    """How one notifier's messages look: its format and (optional) templates."""

    format: str = "text"
    title: str | None = None
    body: str | None = None
    spike_title: str | None = None
    spike_body: str | None = None


def template_problem(source: str) -> str | None:
    """Why a notifier template does not compile, or None."""
    from jinja2 import TemplateError

    try:
        _environment("text").from_string(source)
    except TemplateError as exc:
        return str(exc)
    return None


def _marked(match: Match, fmt: str) -> Markup | str:
    """The snippet with hits marked, escaped for the format."""
    if fmt == "text":
        return match.marked_snippet()
    if fmt == "markdown":
        out, last = [], 0
        for start, end in match.marks:
            if start < last:
                continue
            out += [
                markdown_escape(match.snippet[last:start]),
                "**",
                markdown_escape(match.snippet[start:end]),
                "**",
            ]
            last = end
        return Markup("".join(out) + markdown_escape(match.snippet[last:]))
    # Mark with control characters (feed text never contains them), escape, then swap in tags.
    marked = str(escape(match.marked_snippet("\x00", "\x01")))
    return Markup(marked.replace("\x00", "<b>").replace("\x01", "</b>"))


@dataclass(frozen=True)
class StoryPlan:
    """The story an item belongs to, and the other feeds that carried it before."""

    story: str
    also: tuple[str, ...] = ()


def context(
    item: Item, matches: Sequence[Match], fmt: str, also: Sequence[str] = ()
) -> dict[str, Any]:
    """What a template sees. Strings are plain data; the environment escapes them.
    ``also``: the other feeds that carried the item's story before it."""
    link = safe_link(item.link)
    published = item.published.strftime("%Y-%m-%d %H:%M UTC") if item.published else ""
    first = next((m for m in matches if m.snippet), None)
    entities = _entities(matches)
    return {
        "item": {
            "title": item.title or link or item.id,
            "link": link,
            "feed": item.feed,
            "published": published,
            "author": item.author,
            "id": item.id,
        },
        "rules": [m.rule for m in matches],
        "priority": highest(m.priority for m in matches),
        "matches": [
            {
                "rule": m.rule,
                "terms": list(m.terms),
                "score": m.score,
                "snippet": m.snippet,
                "priority": m.priority,
            }
            for m in matches
        ],
        "entities": entities,
        "also": list(also),
        "snippet": _marked(first, fmt) if first is not None else "",
        "link_md": quote(link, safe=":/?&=%#+,;@~!$'*"),
    }


def _title(source: str, ctx: Mapping[str, Any]) -> str:
    return _clip(_environment(None).from_string(source).render(ctx))


def _clip(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def render(
    item: Item, matches: Sequence[Match], style: Style | None = None, also: Sequence[str] = ()
) -> tuple[str, str]:
    """Title and body of the message about one item, in the notifier's format.

    A notifier template that fails (the sandbox refuses something, a filter breaks)
    falls back to the default, so the alert still goes out; the error is logged.
    """
    style = style or Style()
    if not style.title and not style.body:  # an empty template is no template
        return _default_title(item, matches), _default_body(item, matches, style.format, also)
    from jinja2 import TemplateError

    ctx = context(item, matches, style.format, also)
    title = body = None
    if style.title:
        try:
            title = _title(style.title, ctx)
        except TemplateError as exc:
            log.error("title template failed, using the default: %s", exc)
    if style.body:
        try:
            body = _environment(style.format).from_string(style.body).render(ctx).strip()
        except TemplateError as exc:
            log.error("body template failed, using the default: %s", exc)
    if title is None:
        title = _default_title(item, matches)
    if body is None:
        body = _default_body(item, matches, style.format, also)
    return title, body


# -- the default templates, written out -------------------------------------------------------
#
# What DEFAULT_TITLE and DEFAULT_BODY render, without Jinja2: each value is escaped as the
# format's finalize (above) escapes it, a list joined first and then escaped, as Jinja2's
# join filter does with plain strings. tests/test_alerts.py renders both ways and compares.


def _default_title(item: Item, matches: Sequence[Match]) -> str:
    priority = highest(m.priority for m in matches)
    level = f"{priority.upper()} " if priority in ("high", "urgent") else ""
    rules = ", ".join(m.rule for m in matches)
    return _clip(f"{level}[{rules}] {item.title or safe_link(item.link) or item.id}")


def _default_body(item: Item, matches: Sequence[Match], fmt: str, also: Sequence[str]) -> str:
    link = safe_link(item.link)
    title = item.title or link or item.id
    published = item.published.strftime("%Y-%m-%d %H:%M UTC") if item.published else ""
    entities = _entities(matches)
    first = next((m for m in matches if m.snippet), None)
    snippet = _marked(first, fmt) if first is not None else ""
    out = _finalize(fmt)

    def joined(values: Iterable[str]) -> Any:
        return out(", ".join(values))

    if fmt == "text":
        parts = [f"{title}\n"]
        if link:
            parts.append(f"{link}\n")
        parts.append(f"Feed: {item.feed}\n")
        if also:
            parts.append(f"Also in: {', '.join(also)}\n")
        if published:
            parts.append(f"Published: {published}\n")
        parts.append("Matched: ")
        parts.append(
            "; ".join(f"{m.rule}: {', '.join(m.terms)}" if m.terms else m.rule for m in matches)
        )
        if entities:
            parts.append(f"\nEntities: {', '.join(entities)}")
        if snippet:
            parts.append(f"\n\n{snippet}")
    elif fmt == "markdown":
        if link:
            link_md = quote(link, safe=":/?&=%#+,;@~!$'*")
            parts = [f"**[{out(title)}]({out(link_md)})**\n"]
        else:
            parts = [f"**{out(title)}**\n"]
        parts.append(out(item.feed))
        if also:
            parts.append(f" (also in {joined(also)})")
        if published:
            parts.append(f" · {out(published)}")
        parts.append("\n")
        parts.append(
            "; ".join(
                f"*{out(m.rule)}*: {joined(m.terms)}" if m.terms else f"*{out(m.rule)}*"
                for m in matches
            )
        )
        if entities:
            parts.append(f"\n{joined(entities)}")
        if snippet:
            parts.append(f"\n\n{snippet}")
    else:
        head = f'<a href="{out(link)}">{out(title)}</a>' if link else out(title)
        parts = [f"<p><b>{head}</b><br>", out(item.feed)]
        if also:
            parts.append(f" (also in {joined(also)})")
        if published:
            parts.append(f" · {out(published)}")
        parts.append("<br>")
        parts.append(
            "; ".join(
                f"<i>{out(m.rule)}</i>: {joined(m.terms)}" if m.terms else f"<i>{out(m.rule)}</i>"
                for m in matches
            )
        )
        if entities:
            parts.append(f"<br>{joined(entities)}")
        parts.append("</p>")
        if snippet:
            parts.append(f"<p>{snippet}</p>")
    return "".join(map(str, parts)).strip()


def _entities(matches: Sequence[Match]) -> list[str]:
    return list(
        dict.fromkeys(
            f"{entity} ({kind})" if kind else entity for m in matches for entity, kind in m.entities
        )
    )


def payload(item: Item, matches: Sequence[Match], also: Sequence[str] = ()) -> dict[str, Any]:
    """What a digest needs to list an alert later: plain data, stored with the alert."""
    return {
        "title": item.title or item.link or item.id,
        "link": safe_link(item.link),
        "feed": item.feed,
        "sources": [item.feed, *also],
        "rules": [m.rule for m in matches],
        "terms": list(dict.fromkeys(t for m in matches for t in m.terms)),
        "priority": highest(m.priority for m in matches),
        "entities": list(dict.fromkeys(e for m in matches for e, _ in m.entities)),
    }


def highest(priorities: Iterable[Priority]) -> Priority:
    """The highest of some priorities (normal when there are none)."""
    return max(priorities, key=PRIORITIES.index, default="normal")


def render_digest(
    entries: Sequence[Mapping[str, Any]], style: Style | None = None
) -> tuple[str, str]:
    """One message listing many alerts, grouped by rule."""
    fmt = (style or Style()).format
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        rules = entry.get("rules") or ["feed health"]
        groups.setdefault(", ".join(rules), []).append(entry)
    lines: list[str] = []
    for rule, group in groups.items():
        lines.append(_esc(f"{rule} ({len(group)})", fmt, heading=True))
        for entry in group:
            lines.append(_digest_line(entry, fmt))
        lines.append("")
    title = f"[watcher] {len(entries)} alerts"
    joiner = "<br>\n" if fmt == "html" else "\n"
    return title, joiner.join(lines).strip()


def _esc(text: str, fmt: str, *, heading: bool = False) -> str:
    if fmt == "markdown":
        return f"**{markdown_escape(text)}**" if heading else markdown_escape(text)
    if fmt == "html":
        return f"<b>{escape(text)}</b>" if heading else str(escape(text))
    return text


def _digest_line(entry: Mapping[str, Any], fmt: str) -> str:
    """One alert of a digest; an alert that lists items itself (a flood summary, a spike)
    lists them here too, so that folding it into a digest drops nothing."""
    line = _digest_entry(entry, fmt)
    listed = entry.get("entries")
    if not isinstance(listed, list) or not listed:
        return line
    joiner = "<br>\n" if fmt == "html" else "\n"
    return joiner.join(
        [line, *("  " + _digest_entry(e, fmt) for e in listed if isinstance(e, Mapping))]
    )


def _digest_entry(entry: Mapping[str, Any], fmt: str) -> str:
    sources = entry.get("sources") or entry.get("feeds")
    title, link, feed = (
        str(entry.get("title", "")),
        str(entry.get("link", "")),
        # every feed that carried the story, when the store knows them at delivery
        ", ".join(map(str, sources)) if sources else str(entry.get("feed", "")),
    )
    if entry.get("priority") in ("high", "urgent"):
        title = f"{str(entry['priority']).upper()}: {title}"
    if fmt == "markdown":
        shown = (
            f"[{markdown_escape(title)}]({quote(link, safe=':/?&=%#+,;@~!$*')})"
            if link
            else markdown_escape(title)
        )
        return f"• {shown} ({markdown_escape(feed)})"
    if fmt == "html":
        shown = f'<a href="{escape(link)}">{escape(title)}</a>' if link else str(escape(title))
        return f"• {shown} ({escape(feed)})"
    return f"• {title} ({feed})" + (f"\n  {link}" if link else "")


def plan(
    item_matches: Sequence[tuple[Item, Sequence[Match]]],
    *,
    notifiers_of: Callable[[str], Sequence[str]],
    notifiers: Sequence[str],
    styles: Mapping[str, Style] | None = None,
    flood_threshold: int | None = None,
    stories: Mapping[str, StoryPlan] | None = None,
    told: Callable[[str, str, Sequence[str], Priority], bool] | None = None,
) -> list[Alert]:
    """The alerts to queue: per item, one per notifier, naming the rules routed to it.

    ``notifiers_of(rule)`` gives the notifiers a rule names; an empty answer means all.
    ``stories`` gives an item's story; ``told(item id, notifier, rules, priority)`` says
    that notifier already heard all of it from another feed's copy, so it is not told
    again. When one poll yields more than ``flood_threshold`` alerts for a notifier, that
    notifier gets one summary instead (the flood guard); urgent alerts are never
    folded into it, nor counted towards it.
    """
    styles = styles or {}
    stories = stories or {}
    per_target: dict[str, list[tuple[Item, list[Match]]]] = {}
    for item, matches in item_matches:
        routed: dict[str, list[Match]] = {}
        for match in matches:
            for target in notifiers_of(match.rule) or notifiers:
                routed.setdefault(target, []).append(match)
        for target in notifiers:
            if target not in routed:
                continue
            rules = [m.rule for m in routed[target]]
            level = highest(m.priority for m in routed[target])
            if told is not None and told(item.id, target, rules, level):
                log.info(
                    "alert not repeated: another feed's copy of the story told notifier=%s item=%r",
                    target,
                    item.title,
                )
                continue
            per_target.setdefault(target, []).append((item, routed[target]))
    planned: list[Alert] = []
    for target in notifiers:
        found = per_target.get(target, [])
        style = styles.get(target, Style())
        urgent = [highest(m.priority for m in matches) == "urgent" for _, matches in found]
        ordinary = [entry for entry, alone in zip(found, urgent, strict=True) if not alone]
        if flood_threshold is not None and len(ordinary) > flood_threshold:
            planned.append(_flood_summary(target, ordinary, style))
            found = [entry for entry, alone in zip(found, urgent, strict=True) if alone]
        for item, matches in found:
            story = stories.get(item.id)
            also = story.also if story is not None else ()
            title, body = render(item, matches, style, also)
            planned.append(
                Alert(
                    feed=item.feed,
                    item_id=item.id,
                    notifier=target,
                    rules=tuple(m.rule for m in matches),
                    title=title,
                    body=body,
                    link=item.link,
                    payload=payload(item, matches, also),
                    priority=highest(m.priority for m in matches),
                    story=story.story if story is not None else None,
                )
            )
    return planned


def _flood_summary(
    target: str, found: Sequence[tuple[Item, Sequence[Match]]], style: Style
) -> Alert:
    feed = found[0][0].feed
    entries = [payload(item, matches) for item, matches in found]
    _, listing = render_digest(entries, style)
    ids = hashlib.sha256("\n".join(sorted(item.id for item, _ in found)).encode()).hexdigest()[:16]
    rules = tuple(dict.fromkeys(m.rule for _, matches in found for m in matches))
    priority = highest(m.priority for _, matches in found for m in matches)
    note = (
        f"One poll of {feed} matched {len(found)} items; "
        "they are listed here instead of one message each."
    )
    body = (
        f"{_esc(note, style.format)}\n\n{listing}"
        if style.format != "html"
        else f"<p>{escape(note)}</p>\n{listing}"
    )
    return Alert(
        feed=feed,
        item_id=f"flood:{ids}",
        notifier=target,
        rules=rules,
        title=f"[watcher] {feed}: {len(found)} matching items",
        body=body,
        payload={
            "title": f"{len(found)} matching items",
            "link": "",
            "feed": feed,
            "rules": list(rules),
            "terms": [],
            "priority": priority,
            # every item it lists, with its rules: what backtest counts as alerted
            "items": {item.id: [m.rule for m in matches] for item, matches in found},
            # and as a digest lists them, should the summary itself be held for one
            "entries": [
                {"title": e["title"], "link": e["link"], "feed": e["feed"]} for e in entries
            ],
        },
        priority=priority,
    )


def notices(
    feed: str, kind: str, key: str, title: str, body: str, *, notifiers: Sequence[str]
) -> list[Alert]:
    """A feed health notice for each health notifier; ``key`` makes each episode unique."""
    return [
        Alert(
            feed=feed,
            item_id=f"notice:{kind}:{key}",
            notifier=target,
            rules=(),
            title=title,
            body=body,
            payload={"title": title, "link": "", "feed": feed, "rules": [], "terms": []},
        )
        for target in notifiers
    ]


def match_json(item: Item, match: Match) -> Mapping[str, object]:
    """The JSON object `test-run --json` prints for one (item, rule) match."""
    return {
        "feed": item.feed,
        "rule": match.rule,
        "id": item.id,
        "title": item.title,
        "link": item.link,
        "published": item.published.isoformat() if item.published else None,
        "matched": list(match.terms),
        "snippet": match.snippet,
        "score": match.score,
        "priority": match.priority,
        "entities": [entity for entity, _ in match.entities],
    }


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False)
_STRING = json.encoder.encode_basestring  # what that encoder writes for a str, in C


def json_lines(item: Item, matches: Sequence[Match]) -> list[str]:
    """The lines `test-run --json` prints for an item's matches: one per (item, rule).

    A module-level function, so that a parse worker can be told to write them (it
    pickles by name): the lines cross back to the command, not the matches. Each is
    ``json.dumps(match_json(item, m), ensure_ascii=False)``, byte for byte (key order
    included), with the item's part encoded once and each match's spliced in: an item
    that many rules match was encoded again for each, at a cost near that of matching it.
    """
    settle(matches)  # every detail at once, without a lookup per detail
    published = item.published.isoformat() if item.published else None
    head = f'{{"feed": {_ENCODE(item.feed)}, "rule": '
    middle = (
        f', "id": {_ENCODE(item.id)}, "title": {_ENCODE(item.title)}, '
        f'"link": {_ENCODE(item.link)}, "published": {_ENCODE(published)}, "matched": ['
    )
    lines = []
    for match in matches:
        score = match.score
        if not math.isfinite(score):  # never so; the encoder writes NaN, repr() nan
            lines.append(_ENCODE(match_json(item, match)))
            continue
        lines.append(
            f"{head}{_STRING(match.rule)}{middle}{', '.join(map(_STRING, match.terms))}], "
            f'"snippet": {_STRING(match.snippet)}, "score": {score!r}, '
            f'"priority": {_STRING(match.priority)}, "entities": ['
            f"{', '.join(_STRING(entity) for entity, _ in match.entities)}]}}"
        )
    return lines


# -- spike alerts ---------------------------------------------------------------------------


def _amount(value: float) -> str:
    """A usual count as people write it: 2, 2.5, 0.3."""
    return f"{value:.1f}".removesuffix(".0")


def _period(seconds: float) -> str:
    """A window as the config says it: 10m, 1h, 1h30m, 24h."""
    hours, rest = divmod(int(seconds), 3600)
    return (f"{hours}h" if hours else "") + (f"{rest // 60}m" if rest else "")


@dataclass(frozen=True)
class Spike:
    """What a spike alert tells: who, how many against how many usually, from which
    feeds, and the top stories (each a mapping of title, link, feed, feeds)."""

    kind: str  # rule or entity
    name: str
    count: int
    usual: float
    window: float  # seconds
    factor: float
    min: int
    feeds: Sequence[str]
    stories: Sequence[Mapping[str, Any]]
    started: str  # when the episode was raised, as shown
    priority: Priority = "normal"


def spike_context(spike: Spike) -> dict[str, Any]:
    """What a notifier's ``spike_title`` and ``spike_body`` templates see (README, "Spikes
    and trends"). Strings are plain data: the environment escapes them."""
    return {
        "spike": {
            "kind": spike.kind,
            "name": spike.name,
            "count": spike.count,
            "usual": _amount(spike.usual),
            "window": _period(spike.window),
            "factor": _amount(spike.factor),
            "min": spike.min,
            "feeds": list(spike.feeds),
            "started": spike.started,
            "stories": [
                {
                    "title": str(s.get("title", "")),
                    "link": safe_link(str(s.get("link", ""))),
                    "feed": str(s.get("feed", "")),
                    "feeds": [str(f) for f in s.get("feeds", ())],
                }
                for s in spike.stories
            ],
        },
        "priority": spike.priority,
    }


def render_spike(spike: Spike, style: Style | None = None) -> tuple[str, str]:
    """Title and body of a spike alert, in the notifier's format: its ``spike_title`` and
    ``spike_body`` templates if it has them (a failing one falls back to the default, as
    item templates do), else the defaults. Item templates do not apply: they speak of one
    item, a spike of many."""
    style = style or Style()
    ctx = spike_context(spike)
    title = body = None
    if style.spike_title or style.spike_body:
        from jinja2 import TemplateError

        if style.spike_title:
            try:
                title = _title(style.spike_title, ctx)
            except TemplateError as exc:
                log.error("spike title template failed, using the default: %s", exc)
        if style.spike_body:
            try:
                body = _environment(style.format).from_string(style.spike_body).render(ctx).strip()
            except TemplateError as exc:
                log.error("spike body template failed, using the default: %s", exc)
    if title is None:
        level = f"{spike.priority.upper()} " if spike.priority in ("high", "urgent") else ""
        info = ctx["spike"]
        title = _clip(
            f"{level}[spike] {spike.name}: {spike.count} stories in {info['window']} "
            f"(usually {info['usual']})"
        )
    if body is None:
        body = _default_spike_body(ctx["spike"], style.format)
    return title, body


def _default_spike_body(info: Mapping[str, Any], fmt: str) -> str:
    out = _finalize(fmt)
    feeds = info["feeds"]
    head = (
        f"{info['count']} stories in the last {info['window']} "
        f"(usually {info['usual']} at this time of day), from {len(feeds)} "
        f"feed{'' if len(feeds) == 1 else 's'}"
    )
    who = f"{info['name']} ({info['kind']})"
    lines: list[str] = []
    if fmt == "text":
        lines = [f"{who}: {head}.", f"Feeds: {', '.join(feeds)}", "Top stories:"]
        for story in info["stories"]:
            lines.append(f"• {story['title']} ({', '.join(story['feeds'])})")
            if story["link"]:
                lines.append(f"  {story['link']}")
        return "\n".join(lines)
    if fmt == "markdown":
        lines = [f"**{out(who)}**: {out(head)}", f"Feeds: {out(', '.join(feeds))}", ""]
        for story in info["stories"]:
            shown = (
                f"[{out(story['title'])}]({out(quote(story['link'], safe=':/?&=%#+,;@~!$*'))})"
                if story["link"]
                else out(story["title"])
            )
            lines.append(f"• {shown} ({out(', '.join(story['feeds']))})")
        return "\n".join(map(str, lines))
    parts = [f"<p><b>{out(who)}</b>: {out(head)}<br>Feeds: {out(', '.join(feeds))}</p>", "<ul>"]
    for story in info["stories"]:
        shown = (
            f'<a href="{out(story["link"])}">{out(story["title"])}</a>'
            if story["link"]
            else out(story["title"])
        )
        parts.append(f"<li>{shown} ({out(', '.join(story['feeds']))})</li>")
    parts.append("</ul>")
    return "\n".join(map(str, parts))


def spike_alerts(
    spike: Spike,
    key: str,
    *,
    notifiers: Sequence[str],
    styles: Mapping[str, Style] | None = None,
    label: str = "",
) -> list[Alert]:
    """A spike's alert for each notifier, through the same outbox as item alerts (so
    priorities, quiet hours, digests and max_per_hour apply); ``key`` makes the episode's
    alert unique per notifier in the outbox."""
    styles = styles or {}
    tag = label or f"spike: {spike.name}"
    found: list[Alert] = []
    for target in notifiers:
        title, body = render_spike(spike, styles.get(target, Style()))
        info = spike_context(spike)["spike"]
        found.append(
            Alert(
                feed=SPIKE_FEED,
                item_id=key,
                notifier=target,
                rules=(spike.name,) if spike.kind == "rule" else (),
                title=title,
                body=body,
                payload={
                    "title": f"{spike.name}: {spike.count} stories in {info['window']} "
                    f"(usually {info['usual']})",
                    "link": "",
                    "feed": SPIKE_FEED,
                    "sources": list(spike.feeds),
                    "rules": [tag],
                    "terms": [],
                    "priority": spike.priority,
                    "entries": list(info["stories"]),
                },
                priority=spike.priority,
            )
        )
    return found


SPIKE_FEED = "(spike)"  # the feed column of a spike alert: it reports many feeds
