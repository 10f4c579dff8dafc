"""A narrative's XHTML, and text outside narratives, checked on bytes rather than events.

The detailed walker accepts any well-formed XHTML inside a narrative ``div`` as long as no
element nests deeper than ``MAX_DEPTH`` levels; the fast path hands expat's narratives to
``fits`` instead of handling their events, and ``blank`` looks for text around them.
"""

from __future__ import annotations

import re

from mm_bronze.formats.fhir.structure import MAX_DEPTH

# A '>' followed, after XML whitespace (the only text allowed between FHIR elements), by
# something else than a tag. Possessive, so that whitespace is never taken for text.
_TEXT = re.compile(rb">[ \t\r\n]*+[^< \t\r\n]")
# How many bytes of XHTML one bound covers (each piece bounds its own depth), and at least.
PIECE = 1024
SMALLEST = 16


def blank(data: bytes, start: int, stop: int) -> bool:
    """True if ``data[start:stop]`` (well-formed markup that starts with a tag or with the
    '>' that ends one, no CDATA) has no text but XML whitespace; False may also mean a '>'
    inside an attribute value or a comment (never a wrong True).

    Every character of text follows the '>' ending a tag, comment or processing
    instruction: text is a '>' followed, after whitespace, by anything but a '<'.
    """
    return _TEXT.search(data, start, stop) is None


def fits(data: bytes, start: int, end: int, above: int, marked: bool = False) -> bool:
    """True if no element of the XHTML in ``data[start:end]`` (a well-formed element) has
    ``above`` plus its own depth over ``MAX_DEPTH`` levels; False when that cannot be told
    cheaply (never a wrong True). ``marked``: it holds comments or processing instructions.

    Every element has a '<', so a span with few of them is shallow enough. In a larger one
    (not ``marked``, and without CDATA, which the caller makes sure of), every '<' opens or
    closes a tag, so counting '<' and '</' over a piece tells how many tags it opens, which
    bounds how deep it goes. Empty elements ('/>') are first taken for elements that never
    end, which only overstates depths and spares counting them; only when that bound is too
    deep are they counted, once every '>' is known to end a tag (as many of each), so that a
    '/>' always ends an empty element.
    """
    marks = data.count(b"<", start, end)
    if above + marks <= MAX_DEPTH:
        return True
    if marked:
        return False
    if _shallow(data, start, end, above, empties=False):
        return True
    return data.count(b">", start, end) == marks and _shallow(data, start, end, above, empties=True)


def _shallow(data: bytes, start: int, end: int, above: int, empties: bool) -> bool:
    """``fits``, piece by piece: True if the depth the counts give stays within bounds."""
    depth = above
    while start < end:
        size = PIECE
        while True:
            stop = data.find(b"<", min(start + size, end), end)
            if stop < 0:
                stop = end
            tags = data.count(b"<", start, stop)
            closes = data.count(b"</", start, stop)
            if empties:  # the elements it opens and leaves open, and one empty element
                empty = data.count(b"/>", start, stop)
                rise = tags - closes - empty + 1
            else:  # the elements it opens, as if none of them ended
                empty = 0
                rise = tags - closes
            if depth + rise <= MAX_DEPTH:
                break
            if size <= SMALLEST:  # this deep for real, or too dense to tell
                return False
            size //= 4  # a bound on fewer tags
        depth += tags - 2 * closes - empty
        start = stop
    return True
