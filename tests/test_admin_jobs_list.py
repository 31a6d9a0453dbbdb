"""The job list operators keep open: counts per state, payload search, ticked rows, who did what."""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from werkzeug.datastructures import MultiDict

from app.web.admin import jobs
from tests import factory
from tests.admin import flashed, post, signed_in, state_of

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "root@example.com", admin=True)


def listed(page: str) -> list[str]:
    """Job ids on a list page, in the order shown."""
    return re.findall(r'href="/admin/jobs/([0-9a-f-]{36})"', page)


def every_page(admin: FlaskClient, path: str) -> list[str]:
    """Job ids on the list from `path` on, following "next page" to the end."""
    seen: list[str] = []
    following: str | None = path
    while following:
        page = admin.get(following).text
        seen += listed(page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        following = html.unescape(found.group(1)) if found else None
    return seen


def option(page: str, state: str) -> str:
    """The text of the state filter's option for `state`."""
    found = re.search(rf'<option value="{state}"[^>]*>([^<]*)</option>', page)
    assert found, f"no option {state}"
    return html.unescape(found.group(1))


def test_the_state_filter_says_how_many_jobs_each_state_holds(
    admin: FlaskClient, db: Engine
) -> None:
    for _ in range(3):
        factory.row(db, queue="mail")
    factory.row(db, queue="reports", state="failed")
    factory.row(db, "test.noop", {}, queue="mail", state="succeeded")
    page = admin.get("/admin/jobs").text
    assert [option(page, s) for s in ("queued", "failed", "succeeded", "running")] == [
        "queued (3)",
        "failed (1)",
        "succeeded (1)",
        "running (0)",
    ]
    by_queue = admin.get("/admin/jobs?queue=mail").text
    assert option(by_queue, "queued") == "queued (3)" and option(by_queue, "failed") == "failed (0)"
    by_name = admin.get("/admin/jobs?name=test.noop").text
    assert option(by_name, "succeeded") == "succeeded (1)" and option(by_name, "queued") == (
        "queued (0)"
    )


def test_a_payload_search_finds_finished_and_waiting_jobs_that_contain_it(
    admin: FlaskClient, db: Engine
) -> None:
    wanted = [
        factory.row(db, payload={"a": 7, "b": 1}, created_at=START),
        factory.row(
            db, payload={"a": 7, "b": 2}, state="succeeded", created_at=START + timedelta(1)
        ),
        factory.row(db, payload={"a": 7, "b": 3}, state="failed", created_at=START + timedelta(2)),
    ]
    factory.row(db, payload={"a": 8, "b": 1}, state="succeeded")
    page = admin.get("/admin/jobs", query_string={"payload": '{"a": 7}'}).text
    assert listed(page) == [str(job_id) for job_id in reversed(wanted)]
    narrowed = admin.get("/admin/jobs", query_string={"payload": '{"a": 7, "b": 2}'}).text
    assert listed(narrowed) == [str(wanted[1])]
    assert 'value="{&#34;a&#34;:7,&#34;b&#34;:2}"' in narrowed  # kept, canonical, in the box


def test_a_payload_search_pages_through_its_matches_newest_first(
    admin: FlaskClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "PAGE_SIZE", 2)
    states = ["succeeded", "queued", "failed", "queued", "succeeded"]
    ids = [
        str(factory.row(db, payload={"a": 1}, state=s, created_at=START + timedelta(minutes=n)))
        for n, s in enumerate(states)
    ]
    assert every_page(admin, "/admin/jobs?payload=%7B%22a%22%3A1%7D") == ids[::-1]


def test_a_payload_search_finds_jobs_held_back_by_flow_control(
    admin: FlaskClient, db: Engine
) -> None:
    held = factory.row(
        db,
        payload={"a": 7},
        state="waiting",
        flow_key="tenant-1",
        flow_kind="concurrency",
        flow_limit=1,
    )
    page = admin.get("/admin/jobs", query_string={"payload": '{"a": 7}'}).text
    assert listed(page) == [str(held)]


def test_a_name_search_pages_through_running_jobs_and_the_rest_newest_first(
    admin: FlaskClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "PAGE_SIZE", 2)
    states = ["succeeded", "running", "queued", "running", "failed", "waiting", "running"]
    flow: dict[str, Any] = {"flow_key": "k", "flow_kind": "concurrency", "flow_limit": 1}
    ids = [
        str(
            factory.row(
                db,
                "test.add",
                state=s,
                created_at=START + timedelta(minutes=n),
                **(flow if s == "waiting" else {}),
            )
        )
        for n, s in enumerate(states)
    ]
    factory.row(db, "test.noop", {}, state="running", created_at=START + timedelta(hours=1))
    assert every_page(admin, "/admin/jobs?name=test.add") == ids[::-1]


@pytest.mark.parametrize(
    ("search", "why"),
    [
        ("report_id=7", "it is not JSON"),
        ("[7]", "write a JSON object"),
        ("{}", "write a JSON object"),
        ('{"a": NaN}', "NaN is not a number"),
        ('{"a": -Infinity}', "-Infinity is not a number"),
        ('{"a": 1e309}', "too large a number"),
        ('{"a": [-1e400]}', "too large a number"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"\\udc00": 1}', "lone surrogate"),
        ('{"password": "hunter2"}', "looks secret"),
        ('{"user": {"apiKey": "x"}}', "looks secret"),
        ('{"a": "\\u0000"}', "NUL"),
        ('{"dsn": "x"}', "looks secret"),
        ('{"url": "postgresql://app:guess@db/app"}', "password in a URL"),
        ('{"a": "' + "x" * 1000 + '"}', "longer than 1,000 characters"),
        ('{"a": ' * 12 + "1" + "}" * 12, "nested deeper than 8 levels"),
        ("[" * 600 + "]" * 600, "longer than"),
    ],
)
def test_a_payload_search_that_cannot_run_is_refused_with_the_reason(
    admin: FlaskClient, db: Engine, search: str, why: str
) -> None:
    response = admin.get("/admin/jobs", query_string={"payload": search})
    assert response.status_code == 400
    assert why in html.unescape(response.text)


def test_a_search_that_reads_too_long_is_stopped_and_the_page_says_how_to_narrow_it(
    admin: FlaskClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.row(db, payload={"a": 1})
    monkeypatch.setattr(jobs, "SEARCH_TIMEOUT_MS", 300)
    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:  # a migration or a VACUUM FULL elsewhere
        with db.begin() as conn:
            conn.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert locked.wait(30)
        page = admin.get("/admin/jobs", query_string={"payload": '{"a": 1}'})
    finally:
        release.set()
        holder.join()
    assert page.status_code == 200
    assert "took longer than 0.3 s and was stopped: add a job name, queue or state" in page.text


def test_rows_show_a_masked_payload_preview_relative_times_and_how_long_they_ran(
    admin: FlaskClient, db: Engine
) -> None:
    with db.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    factory.row(
        db,
        "test.login",
        {"user": "ada", "password": "s3cret"},
        state="succeeded",
        created_at=now - timedelta(minutes=10),
        started_at=now - timedelta(minutes=3),
        finished_at=now - timedelta(minutes=1),
    )
    page = admin.get("/admin/jobs").text
    assert "s3cret" not in page
    assert '{"password": "***", "user": "ada"}' in html.unescape(page)
    assert re.search(r">10 min 0\d s ago</time>", page)
    assert re.search(r">ended 1 min 0\d s ago</time>", page)
    assert '<td class="num">2 min 00 s</td>' in page


def test_a_large_payload_stays_out_of_the_list(admin: FlaskClient, db: Engine) -> None:
    noise = secrets.token_urlsafe(6_000)  # random: compression cannot shrink it
    factory.row(db, "test.record", {"path": noise, "marker": "m"})
    page = admin.get("/admin/jobs").text
    assert noise[:100] not in page
    assert re.search(r"\([\d,]+ bytes: open the job to see it\)", page)


@pytest.fixture
def mixed(db: Engine) -> dict[str, uuid.UUID]:
    return {
        state: factory.row(db, state=state)
        for state in ("queued", "running", "succeeded", "failed", "cancelled")
    }


@pytest.mark.parametrize(
    ("action", "changed", "after", "message"),
    [
        ("retry", {"failed", "cancelled"}, "queued", "2 jobs queued again. 3 left as they were"),
        ("cancel", {"queued", "running"}, "cancelled", "2 jobs cancelled. 3 left as they were"),
        ("delete", {"queued", "succeeded", "failed", "cancelled"}, None, "4 jobs deleted. 1 left"),
    ],
)
def test_ticked_jobs_get_the_action_that_suits_them_and_the_rest_are_left_alone(
    admin: FlaskClient,
    db: Engine,
    mixed: dict[str, uuid.UUID],
    action: str,
    changed: set[str],
    after: str | None,
    message: str,
) -> None:
    form = [("job_id", str(job_id)) for job_id in mixed.values()]
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/admin/jobs").text)
    assert token
    response = admin.post(
        "/admin/jobs/selected",
        data=MultiDict(
            [*form, ("action", action), ("queue", "default"), ("csrf_token", token.group(1))]
        ),
        headers={"Origin": "http://localhost"},
    )
    assert response.headers["Location"] == "/admin/jobs?queue=default"
    assert message in html.unescape(flashed(admin, response))
    for state, job_id in mixed.items():
        assert state_of(db, job_id) == (after if state in changed else state)


def test_acting_on_no_ticked_job_says_so(admin: FlaskClient, db: Engine) -> None:
    response = post(admin, "/admin/jobs/selected", {"action": "retry"})
    assert "No job was selected" in flashed(admin, response)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"action": "explode", "job_id": str(uuid.uuid4())}, 400),
        ({"action": "retry", "job_id": "not-a-uuid"}, 400),
        ({"action": "retry", "job_id": str(uuid.uuid4()), "payload": "[1]"}, 400),
        ({"action": "retry", "job_id": str(uuid.uuid4()), "payload": '{"a": "\\ud800"}'}, 400),
        ({"action": "retry", "job_id": str(uuid.uuid4()), "payload": '{"a": 1e309}'}, 400),
    ],
)
def test_a_malformed_selection_is_refused_and_changes_nothing(
    admin: FlaskClient, db: Engine, data: dict[str, str], status: int
) -> None:
    job_id = factory.row(db, state="failed")
    assert post(admin, "/admin/jobs/selected", data).status_code == status
    assert state_of(db, job_id) == "failed"


def test_more_ticked_jobs_than_a_few_pages_are_refused(admin: FlaskClient, db: Engine) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/admin/jobs").text)
    assert token
    form = [("job_id", str(uuid.uuid4())) for _ in range(501)]
    response = admin.post(
        "/admin/jobs/selected",
        data=MultiDict([*form, ("action", "delete"), ("csrf_token", token.group(1))]),
        headers={"Origin": "http://localhost"},
    )
    assert response.status_code == 400


def history(admin: FlaskClient, job_id: uuid.UUID) -> list[str]:
    """The rows of a job page's "Done by people" table, as text."""
    page = admin.get(f"/admin/jobs/{job_id}").text
    section = page.split('id="history"')[1].split("</section>")[0]
    rows = re.findall(r"<tr><td>(.*?)</tr>", section, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", html.unescape(row)).split()) for row in rows]


def test_every_dashboard_action_on_a_job_is_recorded_and_shown_on_its_page(
    admin: FlaskClient, db: Engine
) -> None:
    job_id = factory.row(db, state="failed")
    flashed(admin, post(admin, f"/admin/jobs/{job_id}/retry"))
    flashed(admin, post(admin, f"/admin/jobs/{job_id}/cancel"))
    post(admin, "/admin/jobs/selected", {"action": "retry", "job_id": str(job_id)})
    shown = history(admin, job_id)
    assert [row.split(" UTC ")[1] for row in shown] == [
        "root@example.com (dashboard) retry",
        "root@example.com (dashboard) cancel",
        "root@example.com (dashboard) retry",
    ]
    with db.connect() as conn:
        recorded = conn.execute(
            text("SELECT at <= now() AND at > now() - interval '1 minute' FROM operator_actions")
        ).scalars()
        assert all(recorded)


def test_bulk_actions_and_pauses_are_recorded_and_listed_on_the_overview(
    admin: FlaskClient, db: Engine
) -> None:
    failed = [factory.row(db, queue="mail", state="failed") for _ in range(3)]
    post(admin, "/admin/jobs/failed/retry", {"queue": "mail"})
    post(admin, "/admin/queues/pause", {"queue": "mail"})
    overview = admin.get("/admin/").text
    section = overview.split('id="actions"')[1].split("</section>")[0]
    text_only = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(section)).split())
    assert "root@example.com (dashboard) pause · queue 'mail'" in text_only
    assert "root@example.com (dashboard) retry 3 jobs · every failed job in queue 'mail'" in (
        text_only
    )
    assert history(admin, failed[0])[0].endswith("retry · every failed job in queue 'mail'")


def test_the_list_refreshes_itself_in_a_region_that_holds_the_selection(
    admin: FlaskClient, db: Engine
) -> None:
    factory.row(db)
    page = admin.get("/admin/jobs").text
    live = page.split('<div id="live" data-refresh="5">')[1]
    assert live.index('<form method="post" action="/admin/jobs/selected"') < live.index(
        'name="job_id"'
    )


def test_the_search_document_is_canonical_json() -> None:
    from app.web.admin.params import search_document

    assert search_document(' { "b": [1, 2], "a": "é" } ') == '{"a":"é","b":[1,2]}'
    assert json.loads(search_document('{"n": 12345678901234567890}')) == {"n": 12345678901234567890}
