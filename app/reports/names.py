"""File names as people gave them, made safe to store, show, send as a header and mail.

A browser may send any text as a file name, RFC 2231's `filename*` included,
so CR and LF can arrive percent-encoded. Left in, they break the download's
Content-Disposition header and the "ready" email's Subject on every try.
"""

from __future__ import annotations

import posixpath
import unicodedata

#: Longest name kept; the end is kept, since it carries the extension.
MAX_NAME_CHARS = 120
#: Control and format characters (Unicode Cc, Cf: CR, LF, NUL, bidi overrides,
#: zero-width joiners), line and paragraph separators, and lone surrogates.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def clean_filename(raw: str, fallback: str = "upload.csv") -> str:
    """The base name of `raw` without unsafe characters, spaces collapsed, at most 120 chars."""
    name = posixpath.basename(raw.replace("\\", "/"))
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if unicodedata.category(ch) not in UNSAFE_CATEGORIES or ch in "\t\n\r"
    )
    name = " ".join(kept.split())[-MAX_NAME_CHARS:].strip()
    return name or fallback


def stem(name: str) -> str:
    """The name without its extension, for naming the files built from it."""
    return clean_filename(name).rsplit(".", 1)[0] or "report"
