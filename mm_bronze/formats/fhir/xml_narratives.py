"""A narrative's XHTML, checked without a parser event per element.

The detailed walker accepts any well-formed XHTML inside a narrative ``div`` as long as no
element nests deeper than ``MAX_DEPTH`` levels; the fast path hands expat's narratives to
``fits`` instead of handling their events, and text checks skip their bytes.
"""

from __future__ import annotations

import re

from mm_bronze.formats.fhir.structure import MAX_DEPTH

# Some text outside any tag: a '>' followed, after XML whitespace, by anything but '<'. In
# a well-formed document without CDATA every character of text follows a '>' (the end of a
# tag, comment or processing instruction) and may be such a character; a '>' inside an
# attribute value or a comment may also match, which only sends the payload to the walker.
TEXT = re.compile(rb">[ \t\r\n]*+[^< \t\r\n]")  # possessive: no backtracking over blanks
# A comment, CDATA section, processing instruction or declaration.
MARKUP = re.compile(rb"<[!?]")
# How many bytes of XHTML one bound covers (each piece bounds its own depth), and at least.
PIECE = 1024
SMALLEST = 16


def fits(data: bytes, start: int, end: int, above: int) -> bool:
    """True if no element of the XHTML in ``data[start:end]`` (a well-formed element) has
    ``above`` plus its own depth over ``MAX_DEPTH`` levels; False when that cannot be told
    cheaply (never a wrong True).

    Every element has a '<', so a span with few of them is shallow enough. In a larger one
    without comments, CDATA or processing instructions, every '<' opens or closes a tag; when,
    in addition, every '>' ends one (as many of each), a '/>' always ends an empty element, so
    counting '<', '</' and '/>' over a piece tells the depth at its end, and opening tags that
    are not empty bound how deep it goes.
    """
    marks = data.count(b"<", start, end)
    if above + marks <= MAX_DEPTH:
        return True
    if MARKUP.search(data, start, end) or data.count(b">", start, end) != marks:
        return False
    depth = above
    while start < end:
        size = PIECE
        while True:
            stop = data.find(b"<", min(start + size, end), end)
            if stop < 0:
                stop = end
            tags = data.count(b"<", start, stop)
            closes = data.count(b"</", start, stop)
            empty = data.count(b"/>", start, stop)
            if depth + (tags - closes - empty) + 1 <= MAX_DEPTH:
                break
            if size <= SMALLEST:  # this deep for real, or too dense to tell
                return False
            size //= 4  # a bound on fewer tags
        depth += tags - 2 * closes - empty
        start = stop
    return True
