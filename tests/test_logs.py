"""Log lines: one per record whatever it holds, the ids that tie work together on each,
and one sign-up followed from its request to its email job's finished line."""

from __future__ import annotations

import io
import json
import logging
import queue
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from app import logs
from tests.processes import start, stop, wait_for, written_lines
from tests.web import PASSWORD

HOSTILE = "bad\r\n2026-01-01T00:00:00Z worker INFO forged: line\x00 end"


def record(message: str, *args: Any, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(HOSTILE)
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("app.test", logging.INFO, __file__, 1, message, args, exc_info)


def formatted(formatter: logging.Formatter, rec: logging.LogRecord) -> str:
    logs.Ids().filter(rec)
    return formatter.format(rec)


class CountedStream(io.StringIO):
    """Counts the writes it gets."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_logged_together_share_bounded_writes_and_keep_their_order() -> None:
    stream = CountedStream()
    out = logging.StreamHandler(stream)
    out.setFormatter(logs.TextFormatter("worker"))
    lines: queue.SimpleQueue[Any] = queue.SimpleQueue()
    writer = logs._Writer(lines, out)
    writer.start()
    for n in range(2_500):
        rec = record("line %d", n)
        logs.Ids().filter(rec)
        lines.put(rec)
    writer.stop()  # writes what is queued before it returns
    written = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 1)[1] for line in written] == [str(n) for n in range(2_500)]
    assert 2_500 / logs.BATCH_LINES <= stream.writes < 2_500  # shared, yet bounded in size


@pytest.mark.parametrize("message", [HOSTILE, "x" * 1_000_000, "\ud800 lone surrogate"])
def test_a_json_line_stays_one_parseable_line_whatever_the_message_holds(message: str) -> None:
    line = formatted(logs.JsonFormatter("worker"), record("%s", message, exc=True))
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    document = json.loads(line)
    assert len(document["message"]) < 2 * logs.MAX_MESSAGE_CHARS
    assert document["process"] == "worker" and document["level"] == "INFO"


def test_a_text_line_cannot_forge_another_line() -> None:
    line = formatted(logs.TextFormatter("web"), record("got %s", HOSTILE, exc=True))
    continuation = line.split("\n")[1:]
    assert continuation and all(part.startswith("    ") for part in continuation)
    assert "\r" not in line and "\x00" not in line


@pytest.mark.parametrize(
    ("character", "shown"),
    [("\x1b", "\\x1b"), ("\u2028", "\\u2028"), ("\x85", "\\x85"), ("\x0b", "\\x0b")],
)
def test_a_text_line_shows_control_characters_escaped(character: str, shown: str) -> None:
    """A terminal escape would recolour or rewrite the operator's screen; U+2028 and
    U+0085 end a line for some log tools."""
    line = formatted(logs.TextFormatter("web"), record("got %s", f"a{character}[31mb"))
    assert line.endswith(f"got a{shown}[31mb") and character not in line


def test_bound_ids_and_extras_reach_the_line_and_secrets_do_not() -> None:
    payload = {"to": "ada@example.com", "api_token": "s3cret-value"}
    with logs.bound(payload, job_id="j-1", job_name="mail.send", attempt=2):
        rec = record("calling postgresql://app:hunter2@db/app with s3cret-value")
        rec.outcome = "succeeded"
        document = json.loads(formatted(logs.JsonFormatter("worker"), rec))
    assert document["job_id"] == "j-1" and document["attempt"] == 2
    assert document["outcome"] == "succeeded"
    assert "hunter2" not in document["message"] and "s3cret-value" not in document["message"]
    assert "job_id" not in logs.current()


def test_ids_on_a_text_line_are_one_word_each_and_masked() -> None:
    with logs.bound(job_name="a b\r\nforged INFO", cron="postgresql://app:hunter2@db/app"):
        rec = record("hello")
        rec.job_id = "from-extra"
        line = formatted(logs.TextFormatter("worker"), rec)
    ids = line[line.index("[") + 1 : -1].split(" ")
    assert ids[0] == "job_id=from-extra"  # an extra over a bound id, in ID_FIELDS order
    assert ids[1] == "job_name=a_b\\r\\nforged_INFO"
    assert ids[2].startswith("cron=") and "hunter2" not in line and "\n" not in line


@pytest.mark.parametrize(
    ("created", "shown"),
    [(0.0, "1970-01-01T00:00:00.000Z"), (1796046011.0709, "2026-11-30T13:40:11.070Z"),
     (1796046011.9999, "2026-11-30T13:40:11.999Z"), (1796046012.0, "2026-11-30T13:40:12.000Z")],
)  # fmt: skip
def test_a_line_shows_its_time_in_utc_to_the_millisecond(created: float, shown: str) -> None:
    rec = record("hello")
    rec.created = created
    assert formatted(logs.TextFormatter("web"), rec).startswith(f"{shown} web INFO app.test: ")
    assert json.loads(formatted(logs.JsonFormatter("web"), rec))["time"] == shown


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("a b", False), ("", False)],
)
def test_a_request_id_is_kept_only_when_sane(given: str, kept: bool) -> None:
    assert (logs.request_id(given) == given) is kept


def test_a_sane_request_id_comes_back_and_a_bad_one_is_replaced(client: FlaskClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "req-42"}).headers["X-Request-ID"] == (
        "req-42"
    )
    replaced = client.get("/healthz", headers={"X-Request-ID": "x" * 500}).headers["X-Request-ID"]
    assert replaced != "x" * 500 and len(replaced) == 32


@pytest.fixture
def process_env(process_env: dict[str, str]) -> dict[str, str]:
    """Every process of these tests (gunicorn, the worker) writes JSON lines."""
    return {**process_env, "LOG_FORMAT": "json"}


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in written_lines(path) if line.startswith("{")]


def sign_up_over_http(base: str, request_id: str) -> str:
    """Sign up through the real site as a browser does; the X-Request-ID it answered."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(f"{base}/signup", timeout=30) as page:
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode())
    assert token is not None
    form = {"email": "ada@example.com", "password": PASSWORD, "csrf_token": token[1]}
    request = urllib.request.Request(
        f"{base}/signup",
        data=urllib.parse.urlencode(form).encode(),
        headers={"X-Request-ID": request_id},
    )
    with opener.open(request, timeout=30) as answer:  # follows the 303 to the front page
        assert answer.status == 200
    return request_id


@pytest.mark.slow
def test_one_sign_up_is_followed_from_its_request_to_the_email_jobs_finished_line(
    db: Engine, site: str, process_env: dict[str, str], tmp_path: Path, mailbox: Path
) -> None:
    rid = sign_up_over_http(site, "signup-7")
    with db.connect() as conn:
        job = conn.execute(
            text("SELECT job_id, origin, request_id FROM jobs WHERE name = 'accounts.send_welcome'")
        ).one()
    assert job.request_id == rid and job.origin == "request POST /signup"
    web = json_lines(tmp_path / "gunicorn.log")
    assert any(
        line.get("request_id") == rid and "POST /signup" in line["message"] for line in web
    ), "the access line of the sign-up carries its request id"

    log = tmp_path / "worker.log"
    worker = start("worker.py", process_env, log=log)
    try:

        def finished() -> list[dict[str, Any]]:
            return [line for line in json_lines(log) if line.get("outcome") == "succeeded"]

        (line,) = wait_for(finished, what="the welcome email's finished line")
    finally:
        assert stop(worker) == 0
    assert line["request_id"] == rid and line["job_id"] == str(job.job_id)
    assert line["job_name"] == "accounts.send_welcome" and line["attempt"] == 1
    assert line["worker_id"] and line["queue_wait_s"] >= 0 and line["duration_s"] >= 0
    from_handler = [
        entry
        for entry in json_lines(log)
        if entry["logger"] == "app.mail" and entry.get("job_id") == str(job.job_id)
    ]
    assert from_handler and from_handler[0]["request_id"] == rid
    assert any("stopped cleanly" in entry["message"] for entry in json_lines(log))
