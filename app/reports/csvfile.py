"""Reading an uploaded CSV, with errors worded for the person who uploaded it.

Two readers with one set of rules. `check_head` is what a request can afford:
linear checks of the whole file in C (empty, binary, not UTF-8), then a CSV
parse of at most the first `HEAD_CHARS` characters and `HEAD_LINES` lines,
enough to refuse what is clearly not a table. `parse` reads everything and
runs in the worker, where a big file costs a job, not a web process. Neither
ever uses `csv.Sniffer`: its regular expressions backtrack, and one line of
`, "` repeated holds the interpreter for minutes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

MAX_COLUMNS = 100
MAX_FIELD_CHARS = 10_000
#: How much of a file the upload request parses: the header and the first rows,
#: at most this many characters and lines, whichever ends first.
HEAD_CHARS = 64 * 1024
HEAD_LINES = 200
DELIMITERS = (",", ";", "\t")


class InvalidCSV(ValueError):
    """The file is not a CSV this site can summarize; the message says why, for people."""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Head:
    """What the upload request learned from the start of a file."""

    header: list[str]
    delimiter: str


def _text(data: bytes) -> str:
    """Decode the whole file; memchr and the UTF-8 decoder are C, linear, ~1 ms for 2 MB."""
    if not data.strip():
        raise InvalidCSV("The file is empty.")
    if b"\x00" in data:
        raise InvalidCSV("This is not a CSV file: it contains binary data.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidCSV(
            f"This is not a UTF-8 text file (byte {exc.start + 1} is not text). "
            "Save the file as CSV UTF-8 and try again."
        ) from None


def delimiter(first_line: str) -> str:
    """The delimiter (comma, semicolon or tab) that splits the header into the most fields.

    Each candidate is one pass of the C CSV reader over one line, so the cost
    is linear in its length; quoted names that contain a comma count right.
    Ties, and a single column, mean comma.
    """
    best, most = ",", 1
    for candidate in DELIMITERS:
        try:
            fields = next(csv.reader([first_line], delimiter=candidate), [])
        except csv.Error:
            continue
        if len(fields) > most:
            best, most = candidate, len(fields)
    return best


def _header(row: list[str]) -> list[str]:
    header = [name.strip() for name in row]
    if len(header) > MAX_COLUMNS:
        raise InvalidCSV(f"The file has {len(header)} columns; at most {MAX_COLUMNS} are allowed.")
    for number, name in enumerate(header, 1):
        if not name:
            raise InvalidCSV(f"Column {number} of the first line has no name.")
    return header


def _lines(text: str, sep: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row of `text`."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        return [(reader.line_num, row) for row in reader if any(f.strip() for f in row)]
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise InvalidCSV(
                f"Line {reader.line_num} has a field longer than {MAX_FIELD_CHARS:,} characters."
            ) from None
        raise InvalidCSV(f"Line {reader.line_num} cannot be read as CSV: {exc}.") from None


def _check_rows(header: list[str], lines: Iterable[tuple[int, list[str]]]) -> None:
    for line, row in lines:
        if len(row) != len(header):
            raise InvalidCSV(
                f"Line {line} has {len(row)} fields, but the header has {len(header)}."
            )
        if any(len(field) > MAX_FIELD_CHARS for field in row):
            raise InvalidCSV(f"Line {line} has a field longer than {MAX_FIELD_CHARS:,} characters.")


def _head(text: str) -> str:
    """The first `HEAD_LINES` whole lines of `text`, within its first `HEAD_CHARS` characters."""
    head, end = text[:HEAD_CHARS], -1
    for _ in range(HEAD_LINES):
        end = head.find("\n", end + 1)
        if end < 0:
            break
    else:
        return head[: end + 1]
    if len(head) == len(text):
        return head
    end = head.rfind("\n")
    if end < 0:
        raise InvalidCSV(
            f"The first line is longer than {HEAD_CHARS // 1024} KB: "
            "this does not look like a CSV file."
        )
    return head[: end + 1]


def check_head(data: bytes) -> Head:
    """Refuse what is clearly not a CSV, looking at no more than `HEAD_CHARS` of it.

    A file that passes may still turn out bad further down; `parse` in the
    worker finds that and the export ends with its message.
    """
    text = _text(data)
    head = _head(text)
    truncated = len(head) < len(text)
    sep = delimiter(head.split("\n", 1)[0])
    lines = _lines(head, sep)
    if not lines:
        raise InvalidCSV("The file is empty.")
    header = _header(lines[0][1])
    if truncated:
        # The cut may fall inside a quoted field: the last row read may be partial.
        lines = lines[:-1]
    elif len(lines) == 1:
        raise InvalidCSV("The file has a header line but no rows of data.")
    _check_rows(header, lines[1:])
    return Head(header, sep)


def parse(data: bytes) -> Table:
    """Return the header and rows of `data`, or raise `InvalidCSV` saying what is wrong."""
    text = _text(data)
    lines = _lines(text, delimiter(text[:HEAD_CHARS].split("\n", 1)[0]))
    if not lines:
        raise InvalidCSV("The file is empty.")
    header = _header(lines[0][1])
    if len(lines) == 1:
        raise InvalidCSV("The file has a header line but no rows of data.")
    _check_rows(header, lines[1:])
    return Table(header, [row for _, row in lines[1:]])
