"""Sending email: over SMTP when SMTP_HOST is set, otherwise into a folder.

Only the worker sends mail (from job handlers), so a slow or unreachable mail
server never holds up a request. Delivery is at least once, like the jobs
that call it: a message is keyed by the job that sends it, so a rerun
overwrites the same file, and over SMTP carries the same Message-ID, which
lets a receiving server drop the duplicate.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from app import tracing
from app.config import Settings

log = logging.getLogger(__name__)

#: RFC 5322's limit on a line of a message, CRLF excluded.
MAX_LINE_BYTES = 998


class BadRecipient(ValueError):
    """A recipient that is not exactly one plain address; sending it would go astray."""


def single_address(to: str) -> str:
    """Return `to` if it is one bare address, else raise `BadRecipient`.

    A comma, a semicolon, angle brackets, quotes or a line break would let a
    header hold a second recipient (or a second header): refused, not mended.
    """
    if not to or to.count("@") != 1 or any(c in to for c in ',;<>"\r\n\0') or to != to.strip():
        raise BadRecipient(f"not one plain email address: {to[:100]!r}")
    return to


def compose(settings: Settings, to: str, subject: str, body: str, key: str) -> EmailMessage:
    """Build a plain-text message to one address; `key` (e.g. the job id) fixes its Message-ID.

    The body goes out as 8-bit text, line for line as written: the default
    would pick quoted-printable for any line over 78 characters, which breaks
    sentences with `=` at the end of lines for anyone reading the raw file.
    Only a line beyond SMTP's 998-byte limit falls back to quoted-printable.
    """
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = single_address(to)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{key}@pillars>"
    fits = all(len(line.encode()) <= MAX_LINE_BYTES for line in body.splitlines())
    message.set_content(body, cte="8bit" if fits else "quoted-printable")
    return message


def send(settings: Settings, message: EmailMessage, key: str) -> None:
    """Deliver `message` over SMTP, or write it to `MAIL_DIR/<key>.eml` without SMTP_HOST."""
    if settings.smtp_host:
        _send_smtp(settings, message)
        log.info("mail %s sent to %s over SMTP", key, message["To"])
    else:
        path = _write(Path(settings.mail_dir), message, key)
        log.info("mail %s to %s written to %s", key, message["To"], path)


def _send_smtp(settings: Settings, message: EmailMessage) -> None:
    with (
        tracing.span(
            "smtp send",
            "CLIENT",
            server__address=settings.smtp_host,
            server__port=settings.smtp_port,
        ),
        smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp,
    ):
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(message)


def _write(folder: Path, message: EmailMessage, key: str) -> Path:
    """Write the message atomically, so a reader never sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.eml"
    partial = folder / f".{key}.eml.partial"
    partial.write_bytes(message.as_bytes())
    partial.replace(path)
    return path
