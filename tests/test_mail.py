"""Email leaves over SMTP when configured, to a real (local) SMTP server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from app import mail
from app.config import Settings


class Inbox:
    """An aiosmtpd handler that keeps every message it is sent."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a loopback port, in a thread."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def received(envelope: Envelope) -> Message:
    content: Any = envelope.content
    return message_from_bytes(content)


def test_mail_goes_over_smtp_when_a_host_is_set(
    settings: Settings, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    config = replace(settings, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    message = mail.compose(config, "ada@example.com", "Hello", "Hi Ada.", "job-1")
    mail.send(config, message, "job-1")
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["ada@example.com"]
    got = received(envelope)
    assert (got["Subject"], got["Message-ID"]) == ("Hello", "<job-1@pillars>")
    assert "Hi Ada." in got.get_payload()


def test_a_mail_server_that_is_down_raises_so_the_job_is_retried(settings: Settings) -> None:
    config = replace(settings, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_starttls=False)
    message = mail.compose(config, "ada@example.com", "Hello", "Hi.", "job-2")
    with pytest.raises(OSError):
        mail.send(config, message, "job-2")


def test_every_message_has_a_date_and_keeps_long_sentences_on_one_line(
    settings: Settings,
) -> None:
    sentence = "Your report for a file with a rather long name, café.csv, is ready to download now."
    message = mail.compose(settings, "ada@example.com", "Hello", sentence + "\n", "job-3")
    raw = message.as_bytes()
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert sentence.encode() + b"\n" in raw  # not quoted-printable, no "=" line breaks


@pytest.fixture
def grumpy_server() -> Iterator[tuple[list[bytes], int]]:
    """An SMTP server that accepts every message and then answers QUIT with 500."""
    messages: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"220 grumpy\r\n")
                for line in lines:
                    verb = line[:4].upper()
                    if verb == b"DATA":
                        conn.sendall(b"354 go on\r\n")
                        body = b"".join(iter(lines.readline, b".\r\n"))
                        messages.append(body)
                        conn.sendall(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"500 no\r\n")
                        break
                    else:
                        conn.sendall(b"250 ok\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield messages, port
    listener.close()


def test_a_message_accepted_is_sent_once_however_the_server_answers_quit(
    settings: Settings, grumpy_server: tuple[list[bytes], int]
) -> None:
    """An error on QUIT made the job fail after the server had taken the message: every
    retry sent it again."""
    messages, port = grumpy_server
    config = replace(settings, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    mail.send(config, mail.compose(config, "ada@example.com", "Hi", "Hello.", "job-9"), "job-9")
    assert len(messages) == 1
