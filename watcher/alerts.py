"""Planning and rendering alerts. Pure: decides and formats, never sends.

One item that matches several rules gives one message per notifier, naming every
rule that notifier is meant to hear about.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from watcher.models import Alert, Item, Match

MAX_TITLE = 250


def render(item: Item, matches: Sequence[Match]) -> tuple[str, str]:
    """Title ``[rule, ...] item title`` and a short plain-text body."""
    rules = ", ".join(m.rule for m in matches)
    headline = item.title or item.link or item.id
    title = f"[{rules}] {headline}"
    if len(title) > MAX_TITLE:
        title = title[: MAX_TITLE - 1] + "…"
    lines = [headline]
    if item.link:
        lines.append(item.link)
    lines.append(f"Feed: {item.feed}")
    if item.published is not None:
        lines.append(f"Published: {item.published.strftime('%Y-%m-%d %H:%M UTC')}")
    matched = "; ".join(f"{m.rule}: {', '.join(m.terms)}" if m.terms else m.rule for m in matches)
    lines.append(f"Matched: {matched}")
    entities = dict.fromkeys(
        f"{entity} ({kind})" if kind else entity for m in matches for entity, kind in m.entities
    )
    if entities:
        lines.append(f"Entities: {', '.join(entities)}")
    first = next((m for m in matches if m.snippet), None)
    if first is not None:
        lines.extend(("", first.marked_snippet()))
    return title, "\n".join(lines)


def plan(
    item_matches: Sequence[tuple[Item, Sequence[Match]]],
    *,
    notifiers_of: Callable[[str], Sequence[str]],
    notifiers: Sequence[str],
) -> list[Alert]:
    """The alerts to queue: per item, one per notifier, naming the rules routed to it.

    ``notifiers_of(rule)`` gives the notifiers a rule names; an empty answer means all.
    """
    planned: list[Alert] = []
    for item, matches in item_matches:
        if not matches:
            continue
        routed: dict[str, list[Match]] = {}
        for match in matches:
            for target in notifiers_of(match.rule) or notifiers:
                routed.setdefault(target, []).append(match)
        for target in notifiers:
            if target not in routed:
                continue
            title, body = render(item, routed[target])
            planned.append(
                Alert(
                    feed=item.feed,
                    item_id=item.id,
                    notifier=target,
                    rules=tuple(m.rule for m in routed[target]),
                    title=title,
                    body=body,
                    link=item.link,
                )
            )
    return planned


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
    }
