"""Email leaves over SMTP when configured, to a real (local) SMTP server."""

from __future__ import annotations

import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
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
from app.jobs import Discard


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


class ScriptedServer:
    """An SMTP server in a thread that answers RCPT, the end of DATA and QUIT as told,
    everything else with 250, and keeps every message it accepted."""

    def __init__(self, rcpt: bytes = b"250 ok", data: bytes = b"250 queued") -> None:
        self.rcpt, self.data, self.quit = rcpt, data, b"221 bye"
        self.messages: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                conn.sendall(b"220 scripted\r\n")
                for line in lines:
                    verb = line[:4].upper()
                    if verb == b"RCPT":
                        conn.sendall(self.rcpt + b"\r\n")
                    elif verb == b"DATA":
                        conn.sendall(b"354 go on\r\n")
                        body = b"".join(iter(lines.readline, b".\r\n"))
                        if self.data.startswith(b"250"):
                            self.messages.append(body)
                        conn.sendall(self.data + b"\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(self.quit + b"\r\n")
                        break
                    else:
                        conn.sendall(b"250 ok\r\n")

    def settings(self, settings: Settings) -> Settings:
        return replace(settings, smtp_host="127.0.0.1", smtp_port=self.port, smtp_starttls=False)


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(**answers: bytes) -> ScriptedServer:
        servers.append(ScriptedServer(**answers))
        return servers[-1]

    yield make
    for server in servers:
        server.listener.close()


def test_a_message_accepted_is_sent_once_however_the_server_answers_quit(
    settings: Settings, scripted: Callable[..., ScriptedServer]
) -> None:
    """An error on QUIT made the job fail after the server had taken the message: every
    retry sent it again."""
    server = scripted()
    server.quit = b"500 no"
    config = server.settings(settings)
    mail.send(config, mail.compose(config, "ada@example.com", "Hi", "Hello.", "job-9"), "job-9")
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    ("answers", "words"),
    [
        ({"rcpt": b"550 no such user"}, "refused the recipient for good"),
        ({"data": b"554 spam"}, "refused the message for good"),
    ],
)
def test_a_refusal_for_good_ends_the_mail_job_at_once(
    settings: Settings,
    scripted: Callable[..., ScriptedServer],
    answers: dict[str, bytes],
    words: str,
) -> None:
    """Retried five times over hours, it was refused the same way five times."""
    config = scripted(**answers).settings(settings)
    message = mail.compose(config, "ada@example.com", "Hi", "Hello.", "job-9")
    with pytest.raises(Discard, match=words):
        mail.send(config, message, "job-9")


def test_a_refusal_for_now_is_raised_for_the_jobs_retries(
    settings: Settings, scripted: Callable[..., ScriptedServer]
) -> None:
    config = scripted(rcpt=b"451 try later").settings(settings)
    message = mail.compose(config, "ada@example.com", "Hi", "Hello.", "job-9")
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        mail.send(config, message, "job-9")
