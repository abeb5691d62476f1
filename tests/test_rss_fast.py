"""The fast path on what real feeds carry beside the plain elements (issue 18).

Each case is a small document through both paths: the fast path must read it (or refuse it,
where it says so) and give the very items feedparser gives, and the values asserted here say
what feedparser makes of each form, quirks included, so a reader sees why the fast path
does what it does. Generated documents (tests/test_parse.py) and the corpus of real feeds
(tests/test_corpus_parse.py) hold the same forms to feedparser in every order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from feedparser.encodings import convert_to_utf8
from support import parse_outcome

from watcher.models import FetchResult, Item, ParsedFeed
from watcher.parse import fast_path_refusal, parse
from watcher.rss_fast import Loose, read_document, to_utf8

RSS_NAMESPACES = (
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:atom="http://www.w3.org/2005/Atom"'
    ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
    ' xmlns:psc="http://podlove.org/simple-chapters"'
    ' xmlns:x="http://example.org/x/"'
)
ATOM_NAMESPACES = (
    ' xmlns="http://www.w3.org/2005/Atom"'
    ' xmlns:media="http://search.yahoo.com/mrss/"'
    ' xmlns:gd="http://schemas.google.com/g/2005"'
    ' xmlns:yt="http://www.youtube.com/xml/schemas/2015"'
    ' xmlns:thr="http://purl.org/syndication/thread/1.0"'
)


def rss(items: str, channel: str = "<title>T</title>") -> bytes:
    return f'<rss version="2.0"{RSS_NAMESPACES}><channel>{channel}{items}</channel></rss>'.encode()


def atom(entries: str, feed: str = "<title>T</title>") -> bytes:
    return f"<feed{ATOM_NAMESPACES}>{feed}{entries}</feed>".encode()


RDF_NAMESPACES = (
    ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    ' xmlns="http://purl.org/rss/1.0/"'
    ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
    ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
)
RDF_CHANNEL = (
    '<channel rdf:about="http://x/"><title>T</title><link>http://x/</link>'
    "<description>About x</description><items><rdf:Seq>"
    '<rdf:li rdf:resource="http://x/1"/></rdf:Seq></items>'
    '<image rdf:resource="http://x/i.png"/></channel>'
)


def rdf(items: str, channel: str = RDF_CHANNEL, namespaces: str = RDF_NAMESPACES) -> bytes:
    """An RSS 1.0 document: items beside the channel, not in it."""
    return f"<rdf:RDF{namespaces}>{channel}{items}</rdf:RDF>".encode()


def result(body: bytes) -> FetchResult:
    return FetchResult(url="http://x/", status=200, body=body, headers={"content-type": "text/xml"})


def read(body: bytes) -> ParsedFeed:
    """The document as feedparser reads it, after checking the fast path reads it the same."""
    assert fast_path_refusal(result(body)) is None
    reference = parse("f", result(body), fast=False)
    assert parse("f", result(body)) == reference
    return reference


def one(body: bytes) -> Item:
    (item,) = read(body).items
    return item


def refused(body: bytes) -> str:
    """Why the fast path leaves the document to feedparser (parse() still reads it)."""
    reason = fast_path_refusal(result(body))
    assert reason is not None
    assert parse("f", result(body)) == parse("f", result(body), fast=False)
    return reason


# -- elements feedparser has no handler for ---------------------------------------------------


def test_wordpress_post_id_is_skipped() -> None:
    item = one(
        rss(
            '<item><title>A</title><link>http://x/a</link><guid isPermaLink="false">p=1</guid>'
            '<post-id xmlns="com-wordpress:feed-additions:1">42</post-id></item>',
            '<title>T</title><site xmlns="com-wordpress:feed-additions:1">7</site>',
        )
    )
    assert (item.id, item.title, item.link) == ("p=1", "A", "http://x/a")


def test_an_unknown_element_is_skipped_and_what_it_holds_is_read() -> None:
    item = one(
        rss(
            '<item><guid>1</guid><x:thing a="1">text</x:thing>'
            "<x:wrap><category>inside</category><x:deeper><dc:creator>Ann</dc:creator>"
            "</x:deeper></x:wrap></item>"
        )
    )
    assert (item.tags, item.author) == (("inside",), "Ann")


@pytest.mark.parametrize(
    ("inner", "title"),
    [
        ("<title>T</title><x:wrap><title>N</title></x:wrap>", "T"),  # the first title holds
        ("<x:wrap><title>N</title></x:wrap><title>T</title>", "T"),  # the shallower one wins
        # An empty title does not hold, and a deeper one then replaces its detail, which is
        # what feedparser's own readers use: feedparser's quirk, watcher reads what it reads.
        ("<title></title><x:wrap><title>N</title></x:wrap>", "N"),
    ],
)
def test_titles_deeper_in_an_item_follow_feedparsers_depth_rule(inner: str, title: str) -> None:
    assert one(rss(f"<item><guid>1</guid>{inner}</item>")).title == title


# -- xml:base ---------------------------------------------------------------------------------


def test_xml_base_resolves_links_and_ids() -> None:
    item = one(
        rss(
            '<item xml:base="http://b.org/dir/"><link>p/1</link><guid>g</guid>'
            '<comments xml:base="/c/">x</comments></item>'
        )
    )
    assert (item.link, item.id) == ("http://b.org/dir/p/1", "http://b.org/dir/g")
    entry = one(
        atom(
            '<entry xml:base="http://b.org/d/"><id>e</id><title>A</title>'
            '<link rel="alternate" href="../x"/></entry>'
        )
    )
    assert (entry.link, entry.id) == ("http://b.org/x", "http://b.org/d/e")


def test_an_xml_base_set_below_no_base_stays_for_the_rest_of_the_document() -> None:
    # feedparser goes back to the parent's base only when the parent had one.
    parsed = read(
        rss('<item><link xml:base="http://b.org/">a</link></item><item><link>b</link></item>')
    )
    assert [item.link for item in parsed.items] == ["http://b.org/a", "http://b.org/b"]


# -- authors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inner", "author"),
    [
        ("<author>bob@example.org (Bob)</author>", "bob@example.org (Bob)"),
        ("<author>bob@example.org (Bob)</author><dc:creator>Carol</dc:creator>", "Carol"),
        ("<dc:creator>Carol</dc:creator><author>bob@example.org</author>", "bob@example.org"),
        ("<itunes:author>Dan</itunes:author>", "Dan"),
        # An RSS author's address is kept as the next author's when that one has none.
        (
            "<author>bob@example.org (Bob)</author><atom:author><atom:name>Eve</atom:name>"
            "</atom:author>",
            "Eve (bob@example.org)",
        ),
    ],
)
def test_rss_authors_with_addresses_and_several_authors(inner: str, author: str) -> None:
    assert one(rss(f"<item><guid>1</guid>{inner}</item>")).author == author


def test_a_blogger_author_with_its_image() -> None:
    entry = one(
        atom(
            "<entry><id>1</id><author><name>Nina</name><uri>http://n.org/</uri>"
            "<email>noreply@blogger.com</email><gd:image rel='http://schemas.google.com/g/2005#"
            "thumbnail' width='16' height='16' src='https://img/b16.png'/></author></entry>"
        )
    )
    assert entry.author == "Nina (noreply@blogger.com)"


# -- Media RSS, YouTube -----------------------------------------------------------------------


def test_a_youtube_entry_takes_its_summary_from_the_media_group() -> None:
    entry = one(
        atom(
            "<entry><id>yt:video:abc</id><yt:videoId>abc</yt:videoId><yt:channelId>UC1</yt:channelId>"
            '<title>Video</title><link rel="alternate" href="https://www.youtube.com/watch?v=abc"/>'
            "<published>2026-11-30T10:00:00+00:00</published><media:group>"
            "<media:title>Video</media:title>"
            '<media:content url="https://www.youtube.com/v/abc" type="application/x-shockwave-flash"'
            ' width="640" height="390"/><media:thumbnail url="https://i.ytimg.com/vi/abc/1.jpg"/>'
            "<media:description>What the video shows.</media:description><media:community>"
            '<media:starRating count="3" average="5.00"/><media:statistics views="42"/>'
            "</media:community></media:group></entry>"
        )
    )
    assert (entry.title, entry.summary, entry.link) == (
        "Video",
        "What the video shows.",
        "https://www.youtube.com/watch?v=abc",
    )
    assert entry.published == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_media_content_with_children_as_wordpress_writes_it() -> None:
    item = one(
        rss(
            "<item><title>Post</title><guid>1</guid><description>Short</description>"
            '<media:content url="http://x/i.jpg" medium="image">'
            '<media:title type="html">Photo</media:title>'
            "<media:description>A photo</media:description></media:content></item>"
        )
    )
    # media:title does not replace the item's title; a second description is the content.
    assert (item.title, item.summary, item.content) == ("Post", "Short", "A photo")


def test_media_keywords_and_categories_are_tags() -> None:
    item = one(
        rss(
            "<item><guid>1</guid><media:keywords>a, b,,c</media:keywords>"
            '<media:category scheme="urn:s">d</media:category><dc:subject>e</dc:subject></item>'
        )
    )
    assert item.tags == ("a", "b", "c", "d", "e")


# -- iTunes -----------------------------------------------------------------------------------


def test_itunes_elements_of_a_podcast_episode() -> None:
    item = one(
        rss(
            "<item><title>Ep 1</title><guid>1</guid><itunes:summary>Sum</itunes:summary>"
            "<description>Desc</description><itunes:subtitle>Sub</itunes:subtitle>"
            "<itunes:author>Host</itunes:author><itunes:keywords>x, y</itunes:keywords>"
            '<itunes:category text="Arts"><itunes:category text="Books"/></itunes:category>'
            "<itunes:duration>12:00</itunes:duration><itunes:explicit>no</itunes:explicit></item>"
        )
    )
    # The second summary-like element is feedparser's content.
    assert (item.summary, item.content, item.author) == ("Sum", "Desc", "Host")
    assert item.tags == ("x", "y", "Arts", "Books")


def test_a_channel_summary_and_description_change_the_first_item() -> None:
    # At the channel level the description after itunes:summary is a content: feedparser's
    # "has content" flag stays up until the end of the first item, where a second summary
    # then replaces the first instead of becoming the content.
    parsed = read(
        rss(
            "<item><guid>1</guid><description>D</description><itunes:summary>S</itunes:summary>"
            "</item><item><guid>2</guid><description>D</description>"
            "<itunes:summary>S</itunes:summary></item>",
            "<title>T</title><itunes:summary>X</itunes:summary><description>Y</description>",
        )
    )
    assert [(i.summary, i.content) for i in parsed.items] == [("S", ""), ("D", "S")]


# -- other forms ------------------------------------------------------------------------------


def test_an_atom_link_in_an_rss_item() -> None:
    item = one(rss('<item><guid isPermaLink="false">1</guid><atom:link href="http://x/a"/></item>'))
    assert item.link == "http://x/a"
    item = one(
        rss(
            '<item><guid isPermaLink="false">1</guid>'
            '<atom:link rel="standout" href="http://x/s"/><link>http://x/l</link></item>'
        )
    )
    assert item.link == "http://x/l"


def test_xhtml_content_loses_its_wrapping_div() -> None:
    entry = one(
        atom(
            '<entry><id>1</id><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            '<p class="a">Hello <b>world</b> &amp; more</p></div></content>'
            '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">A <i>B</i></div></title>'
            "</entry>"
        )
    )
    assert (entry.title, entry.content) == ("A B", "Hello world & more")


def test_markup_inside_an_rss_description_is_read_as_xhtml() -> None:
    assert one(rss("<item><guid>1</guid><description>Hi <b>there</b></description></item>")) == (
        one(rss("<item><guid>1</guid><description>Hi &lt;b>there&lt;/b></description></item>"))
    )


def test_an_items_own_image_and_its_title() -> None:
    item = one(
        rss(
            "<item><guid>1</guid><title>T</title><image><url>http://x/i.png</url>"
            "<title>I</title><link>http://x/</link></image></item>"
        )
    )
    # The image lets the next title in: its detail, which feedparser's readers use, is I's.
    assert (item.title, item.link) == ("I", "1")


def test_an_atom_entry_copied_from_another_feed_keeps_its_own_title() -> None:
    entry = one(
        atom(
            "<entry><id>1</id><title>Post</title><source><id>s</id><title>Blog</title>"
            '<link href="http://blog/"/><updated>2026-11-01T00:00:00Z</updated>'
            "<rights>CC</rights></source><link href='http://blog/post'/></entry>"
        )
    )
    assert (entry.title, entry.link) == ("Post", "http://blog/post")


def test_podlove_chapters_and_thread_counts() -> None:
    item = one(
        rss(
            '<item><guid>1</guid><title>Ep</title><psc:chapters version="1.2">'
            '<psc:chapter start="00:00:00" title="Intro"/></psc:chapters></item>'
        )
    )
    assert item.title == "Ep"
    entry = one(atom("<entry><id>1</id><title>P</title><thr:total>3</thr:total></entry>"))
    assert entry.title == "P"


# -- RSS 1.0 ------------------------------------------------------------------------------------


def test_an_rss_1_0_document_is_read_with_its_items_beside_the_channel() -> None:
    parsed = read(
        rdf(
            '<item rdf:about="http://x/1"><title>One</title><link>http://x/1</link>'
            "<description>A &lt;b&gt;bold&lt;/b&gt; start</description>"
            "<dc:date>2026-11-30T10:00:00+01:00</dc:date><dc:creator>Ann</dc:creator>"
            "<dc:subject>Kharkiv</dc:subject>"
            "<content:encoded><![CDATA[<p>Full text</p>]]></content:encoded></item>"
            '<item rdf:about="http://x/2"><title>Two</title></item>'
        )
    )
    assert (parsed.title, parsed.version) == ("T", "rss10")
    first, second = parsed.items
    assert (first.id, first.title, first.link, first.author) == (
        "http://x/1",
        "One",
        "http://x/1",
        "Ann",
    )
    assert (first.summary, first.content, first.tags) == ("A bold start", "Full text", ("Kharkiv",))
    assert first.published == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert (second.id, second.title) == ("http://x/2", "Two")


def test_an_rss_1_0_items_guid_takes_the_place_of_its_rdf_about() -> None:
    """feedparser sets the id from rdf:about when the item starts, and any id element
    after replaces it; an empty rdf:about sets nothing."""
    parsed = read(
        rdf(
            '<item rdf:about="http://x/1"><guid isPermaLink="false">g1</guid></item>'
            '<item rdf:about=""><title>No id</title><link>http://x/2</link></item>'
        )
    )
    assert [(i.id, i.link) for i in parsed.items] == [
        ("g1", ""),
        ("http://x/2", "http://x/2"),
    ]


def test_an_image_and_text_input_beside_the_channel_keep_their_titles() -> None:
    """Once the channel has ended, feedparser stores a title outside an entry nowhere."""
    parsed = read(
        rdf(
            '<image rdf:about="http://x/i.png"><title>Logo</title><url>http://x/i.png</url>'
            "<link>http://x/</link></image>"
            '<item rdf:about="http://x/1"><title>One</title></item>'
            '<textinput rdf:about="http://x/s"><title>Search</title><name>q</name>'
            "<link>http://x/s</link><description>Find</description></textinput>"
        )
    )
    assert (parsed.title, [i.title for i in parsed.items]) == ("T", ["One"])


def test_an_rdf_about_in_an_rss_2_0_item_is_its_id_too() -> None:
    """feedparser's item handler is one for every version."""
    namespaces = f'{RSS_NAMESPACES} xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
    body = f'<rss version="2.0"{namespaces}><channel><title>T</title>'
    body += '<item rdf:about="urn:x:1"><title>A</title></item></channel></rss>'
    assert one(body.encode()).id == "urn:x:1"


# -- what stays with feedparser ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # feedparser drops a <div> in text or html and never counts its end: every depth
        # after it is off by one, for the rest of the document.
        (rss("<item><guid>1</guid><description><div>a</div></description></item>"), "<div>"),
        (
            rss(
                '<item><guid>1</guid><content:encoded type="application/x-shockwave-flash">'
                "AAAA</content:encoded></item>"
            ),
            "base64",
        ),
        (rss("<item><guid>1</guid><item><guid>2</guid></item></item>"), "<item> in an entry"),
        (
            atom(
                '<entry><id>1</id><content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
                '<span xmlns:xlink="http://www.w3.org/1999/xlink">a</span></div></content></entry>'
            ),
            "XLink",
        ),
        (
            rss('<item><guid>1</guid><x:a>1</x:a><b xmlns="http://example.org/x/">2</b></item>'),
            "both default and prefixed",
        ),
        (rss(f"<item><guid>1</guid>{'<x:a>' * 3000}deep{'</x:a>' * 3000}</item>"), "deeply"),
        # RSS 1.0
        # Declared on the channel: feedparser only knows the version from there on.
        (
            rdf(
                '<item rdf:about="http://x/1"><title>A</title></item>',
                '<channel xmlns="http://purl.org/rss/1.0/"><title>T</title></channel>',
                ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"',
            ),
            "version changes",
        ),
        # Atom's namespace first: feedparser takes the document for Atom 1.0.
        (
            rdf(
                '<item rdf:about="http://x/1"><title>A</title></item>',
                namespaces=' xmlns:a="http://www.w3.org/2005/Atom"' + RDF_NAMESPACES,
            ),
            "version changes",
        ),
        (rdf("<title>Beside</title>"), "<title> beside the channel"),
        (
            rdf(
                '<item xmlns:o="http://example.org/o/" o:about="http://x/1"><title>A</title></item>'
            ),
            "about attribute",
        ),
        # rdf bound to a namespace feedparser does not know: it still finds "rdf:about"
        # among the names the document gives.
        (
            b'<rss version="2.0" xmlns:rdf="http://example.org/other/"><channel><title>T</title>'
            b'<item rdf:about="http://x/1"><title>A</title></item></channel></rss>',
            "about attribute",
        ),
    ],
    ids=[
        "div-in-description",
        "base64",
        "item-in-item",
        "xlink-below-root",
        "default-and-prefix",
        "deep",
        "rss10-namespace-on-channel",
        "rss10-atom-first",
        "rss10-title-beside-channel",
        "rss10-other-about",
        "rdf-rebound",
    ],
)
def test_what_feedparser_reads_its_own_way_stays_with_it(body: bytes, reason: str) -> None:
    assert reason in refused(body)


# What servers send: nothing, XML types with and without a charset, text types.
CONTENT_TYPES = [
    None,
    "application/xml",
    "application/rss+xml; charset=utf-8",
    "application/atom+xml; charset=iso-8859-1",
    "text/xml",
    "text/xml; charset=UTF-8",
    "text/html; charset=utf-8",
]


def converted(
    convert: Callable[[dict[str, str], bytes, dict[str, Any]], bytes],
    headers: dict[str, str],
    body: bytes,
) -> tuple[bytes, dict[str, Any]]:
    result: dict[str, Any] = {}
    data = convert(dict(headers), body, result)
    error = result.pop("bozo_exception", None)  # a new instance each time: compared by kind
    return data, {**result, "error": (type(error), str(error)) if error else None}


_RSS = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
_LONG = "é" * 40_000  # 80,000 bytes: a character split between two 64 KiB pieces


@pytest.mark.parametrize(
    "body",
    [
        b"<?xml version='1.0' encoding='utf-8'?>\n" + _RSS,
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>\n' + _RSS,
        b'<?xml version="1.0" encoding="utf8"?>\n' + _RSS,
        b'<?xml version="1.0"?>\n<rss>' + _LONG.encode() + "😀".encode() + b"</rss>",
        b"\n<rss>" + _LONG.encode() + b"</rss>",  # no declaration: one is added
        b'<?xml version="1.0" encoding="utf-8"?>\n<rss>' + _LONG.encode() + b"\xff</rss>",
        b'<?xml version="1.0" encoding="utf-8"?><rss>' + b"\xe9" + b"</rss>\n",  # in line one
        b'<?xml version="1.0" encoding="iso-8859-1"?>\n<rss>\xe9</rss>',
        b'<?xml version="1.0" encoding="windows-1251"?>\n<rss>\xc0</rss>',
        b'<?xml version="1.0" encoding="utf-8"?>' + _RSS,  # one line: no first line to read
        b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>\n" + _RSS,  # a BOM
        "<?xml version='1.0' encoding='utf-16'?>\n<rss/>".encode("utf-16-le"),  # no BOM
        "<?xml version='1.0' encoding='utf-16'?>\n<rss/>".encode("utf-16"),
        b"<?xml version='1.0' encoding='nonsense'?>\n<rss>\xe9</rss>",
    ],
    ids=lambda body: body[:40].decode("latin-1"),
)
def test_a_document_is_decoded_as_feedparser_decodes_it(body: bytes) -> None:
    """to_utf8 reads UTF-8 documents without feedparser's copies, and hands everything
    else to feedparser: either way, the same bytes and the same verdict."""
    for kind in CONTENT_TYPES:
        headers = {} if kind is None else {"content-type": kind}
        assert converted(to_utf8, headers, body) == converted(convert_to_utf8, headers, body), kind


# -- not well-formed: feedparser's loose parser, without its strict attempt first -------------


@pytest.mark.parametrize(
    "body",
    [
        # HTML5 entities XML does not define (watcher turns HTML 4's into numeric references
        # first, and then the document is well-formed), as a real feed writes one in a title.
        rss(
            "<item><guid>1</guid><title>Re&colon; a&nbsp;b</title><description>x</description></item>"
        ),
        atom("<entry><id>1</id><title>A &colon; b</title><summary>&lt;b&gt;s</summary></entry>"),
        # A control character, an unclosed tag, junk after the root, a stray ampersand.
        rss("<item><guid>1</guid><title>A \x02 b</title></item>"),
        rss("<item><guid>1</guid><title>A</title><description>x<br></description></item>"),
        rss("<item><guid>1</guid><title>A</title></item>") + b"<junk/>",
        rss("<item><guid>1</guid><title>Tom & Jerry</title><link>http://x/?a=1&b=2</link></item>"),
        # Relative links (feedparser's loose parser makes nothing absolute without a base).
        atom('<entry><id>1</id><title>A &lpar;1&rpar;</title><link href="/a"/></entry>'),
    ],
    ids=["html-entities", "atom-entities", "control", "unclosed", "junk", "ampersand", "relative"],
)
def test_a_document_that_is_not_well_formed_goes_straight_to_the_loose_parser(body: bytes) -> None:
    """feedparser's strict parser reads such a document up to the error and keeps nothing
    but the error; expat (the same library, on the same bytes) says so first, and watcher
    runs feedparser's loose parser at once: the very items of feedparser.parse."""
    assert refused(body) == "not well-formed XML: feedparser's loose parser reads it"
    assert isinstance(read_document(result(body).body, result(body).headers), Loose)
    assert parse("f", result(body)).items


@pytest.mark.parametrize(
    "body",
    [
        b"<html><head><title>Moved</title></head><body><p>Gone &rarr; <br> here</body></html>",
        b"<notafeed><x>1 &colon; 2</notafeed>",
        b"<rss><channel><title>cut short &amp; broken",
        b"\x00\x01 not xml at all <",
    ],
    ids=["html-page", "no-feed", "truncated", "garbage"],
)
def test_a_broken_document_ends_as_feedparser_ends_it(body: bytes) -> None:
    """Where the loose parser finds no feed, feedparser itself is asked, so the error
    names its own reason, as it did before the shortcut; what it does find is the same."""
    assert parse_outcome(result(body), fast=True) == parse_outcome(result(body), fast=False)
    assert isinstance(parse_outcome(result(b"<notafeed><x>1 &colon; 2</notafeed>"), fast=True), str)
