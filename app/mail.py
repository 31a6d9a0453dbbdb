"""Sending email: over SMTP when SMTP_HOST is set, otherwise into a folder.

Only the worker sends mail (from job handlers), so a slow or unreachable mail
server never holds up a request. Delivery is at least once, like the jobs
that call it: a message is keyed by the job that sends it, so a rerun
overwrites the same file, and over SMTP carries the same Message-ID, which
lets a receiving server drop the duplicate.
"""

from __future__ import annotations

import logging
import re
import smtplib
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from app import tracing
from app.config import Settings
from app.jobs.errors import Discard

log = logging.getLogger(__name__)

#: RFC 5322's limit on a line of a message, CRLF excluded.
MAX_LINE_BYTES = 998
#: The time limit of a job that sends one message (its `@job(timeout=...)`): smtplib's
#: timeout bounds each read, not the whole exchange, and a server that drips a byte
#: every few seconds would otherwise hold the job's thread for good.
SEND_TIMEOUT = 120


class BadRecipient(ValueError):
    """A recipient that is not exactly one plain address; sending it would go astray."""


def single_address(to: str) -> str:
    """Return `to` as one bare ASCII address (an international domain in its IDNA form),
    else raise `BadRecipient`.

    A comma, a semicolon, angle brackets, quotes or a line break would let a
    header hold a second recipient (or a second header): refused, not mended.
    So is an encoded word (`=?utf-8?q?...?=`): the header would be decoded on
    the way out, into another address than the one checked, or two. An
    address stored before addresses were kept in their ASCII form is sent to
    in it, so no server needs SMTPUTF8 for a domain.
    """
    if not to or to.count("@") != 1 or any(c in to for c in ',;<>"\r\n\0') or to != to.strip():
        raise BadRecipient(f"not one plain email address: {to[:100]!r}")
    if "=?" in to:
        raise BadRecipient(f"an encoded word is no email address: {to[:100]!r}")
    try:
        valid = validate_email(to, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return to  # the server decides; nothing here can turn it into two
    return str(valid.ascii_email or to)


#: Control characters, which would end a header line or hide in it.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def plain_header(text: str) -> str:
    """`text` as one header line that means what it says: no control characters, and no
    encoded word (`=?...?=`), which a mail program would decode, into line breaks and
    headers of its own (Python before 3.11.10 even writes them out so, CVE-2024-6923)."""
    return _CONTROL.sub(" ", text).replace("=?", "= ?")


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
    message["Subject"] = plain_header(subject)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{key}@pillars>"
    fits = all(len(line.encode()) <= MAX_LINE_BYTES for line in body.splitlines())
    message.set_content(body, cte="8bit" if fits else "quoted-printable")
    return message


def send(settings: Settings, message: EmailMessage, key: str) -> None:
    """Deliver `message` over SMTP, or write it to `MAIL_DIR/<key>.eml` without SMTP_HOST.

    A server that refuses the recipient or the message for good (a 5xx answer)
    ends the job at once (`Discard`): retrying would be refused the same way.
    A refusal for now (4xx), or a server away, raises for the job's retries.
    """
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
    ):
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30)
        try:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as refused:
            smtp.close()
            codes = [code for code, _ in refused.recipients.values()]
            if codes and all(500 <= code < 600 for code in codes):
                raise Discard(
                    f"the mail server refused the recipient for good: {refused}"
                ) from None
            raise
        except smtplib.SMTPDataError as refused:
            smtp.close()
            if 500 <= refused.smtp_code < 600:
                raise Discard(f"the mail server refused the message for good: {refused}") from None
            raise
        except BaseException:
            smtp.close()
            raise
        # Accepted: a server that then answers QUIT badly must not make the job
        # send the message again.
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _write(folder: Path, message: EmailMessage, key: str) -> Path:
    """Write the message atomically, so a reader never sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.eml"
    partial = folder / f".{key}.eml.partial"
    partial.write_bytes(message.as_bytes())
    partial.replace(path)
    return path
