"""Reading an uploaded CSV, with errors worded for the person who uploaded it.

The web tier parses each upload once before accepting it, so a bad file is
refused at once with a clear message instead of failing later in the worker.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

MAX_COLUMNS = 100
MAX_FIELD_CHARS = 10_000


class InvalidCSV(ValueError):
    """The file is not a CSV this site can summarize; the message says why, for people."""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


def _text(data: bytes) -> str:
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


def _delimiter(text: str) -> str:
    """Guess the delimiter (comma, semicolon or tab) from the first line; quoting stays Excel's."""
    try:
        return csv.Sniffer().sniff(text.split("\n", 1)[0], delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def _header(row: list[str]) -> list[str]:
    header = [name.strip() for name in row]
    if len(header) > MAX_COLUMNS:
        raise InvalidCSV(f"The file has {len(header)} columns; at most {MAX_COLUMNS} are allowed.")
    for number, name in enumerate(header, 1):
        if not name:
            raise InvalidCSV(f"Column {number} of the first line has no name.")
    return header


def parse(data: bytes) -> Table:
    """Return the header and rows of `data`, or raise `InvalidCSV` saying what is wrong."""
    text = _text(data)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        lines = [(reader.line_num, row) for row in reader if any(f.strip() for f in row)]
    except csv.Error as exc:
        raise InvalidCSV(f"Line {reader.line_num} cannot be read as CSV: {exc}.") from None
    if not lines:
        raise InvalidCSV("The file is empty.")
    header = _header(lines[0][1])
    if len(lines) == 1:
        raise InvalidCSV("The file has a header line but no rows of data.")
    for line, row in lines[1:]:
        if len(row) != len(header):
            raise InvalidCSV(
                f"Line {line} has {len(row)} fields, but the header has {len(header)}."
            )
        if any(len(field) > MAX_FIELD_CHARS for field in row):
            raise InvalidCSV(f"Line {line} has a field longer than {MAX_FIELD_CHARS} characters.")
    return Table(header, [row for _, row in lines[1:]])
