"""The dashboard's view of flow control: limits per queue, keys in use, and why a job waits."""

from __future__ import annotations

import html

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import claims, enqueue, flow
from tests.admin import flashed, post, signed_in


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "ops@example.com", admin=True)


def test_the_overview_shows_queue_limits_and_the_keys_jobs_wait_for(
    admin: FlaskClient, db: Engine
) -> None:
    with Session(db) as session:
        flow.set_limit(session, "mail", concurrency=5, rate=10.0, burst=20, set_by="alice")
        for n in range(3):
            enqueue(session, "test.add", {"a": n}, concurrency_key="user:7")
        session.commit()
    claims.promote(db)
    page = admin.get("/admin/").get_data(as_text=True)
    limits = page.split('id="limits"')[1].split("</table>")[0]
    assert "mail" in limits and "10/s, burst 20" in limits and "alice" in limits
    keys = page.split('id="keys"')[1].split("</table>")[0]
    assert "user:7" in keys and ">2<" in keys.replace(" ", "")  # two still waiting


def test_a_waiting_job_page_says_which_key_it_waits_for(admin: FlaskClient, db: Engine) -> None:
    with Session(db) as session:
        ids = [enqueue(session, "test.add", {"a": n}, concurrency_key="user:7") for n in range(2)]
        session.commit()
    claims.promote(db)
    page = admin.get(f"/admin/jobs/{ids[1]}").get_data(as_text=True)
    assert "not running yet: waiting for key user:7: 1 of 1 running or next" in page
    assert "Concurrency key" in page and "at most 1 at once" in page


def test_limits_are_set_and_lifted_from_the_dashboard(admin: FlaskClient, db: Engine) -> None:
    response = post(
        admin, "/admin/queues/limit", {"queue": "mail", "concurrency": "3", "rate": "600/m"}
    )
    assert "mail: at most 3 running, 10/s (burst 10)" in flashed(admin, response)
    with db.connect() as conn:
        assert flow.limits(conn)["mail"]["concurrency"] == 3
    page = flashed(admin, post(admin, "/admin/queues/unlimit", {"queue": "mail"}))
    assert "Queue 'mail': limits lifted." in html.unescape(page)
    overview = admin.get("/admin/").get_data(as_text=True)
    assert "No queue has limits." in overview
    assert "limit" in overview.split('id="actions"')[1]  # the record of who did it


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"queue": "mail", "rate": "fast"}, "a rate reads like"),
        ({"queue": "mail", "concurrency": "many"}, "concurrency must be a whole number"),
        ({"queue": "a,b", "concurrency": "1"}, "queue must be 1-64"),
        ({"queue": "mail"}, "give a concurrency limit, a rate"),
    ],
)
def test_bad_limits_are_refused_with_a_reason(
    admin: FlaskClient, form: dict[str, str], words: str
) -> None:
    response = post(admin, "/admin/queues/limit", form)
    assert response.status_code == 400 and words in response.get_data(as_text=True)


def test_pausing_a_queue_name_no_worker_could_address_is_refused(admin: FlaskClient) -> None:
    response = post(admin, "/admin/queues/pause", {"queue": "a,b"})
    assert response.status_code == 400 and "queue must be 1-64" in response.get_data(as_text=True)


def test_metrics_count_what_flow_control_holds_back(app: Flask, db: Engine) -> None:
    with Session(db) as session:
        flow.set_limit(session, "mail", concurrency=1)
        for n in range(3):
            enqueue(session, "test.add", {"a": n}, queue="mail")
            enqueue(session, "test.add", {"a": n}, concurrency_key="user:7")
        session.commit()
    claims.promote(db)
    claims.claim_limited(db, "w", "mail", 5)
    text_format = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'pillars_jobs_held_back{queue="default",by="key"} 2' in text_format
    assert 'pillars_jobs_held_back{queue="mail",by="queue_limit"} 2' in text_format


def test_a_queue_action_that_changes_nothing_says_so_and_leaves_no_record(
    admin: FlaskClient, db: Engine
) -> None:
    """Resuming a queue never paused said 'resumed' and was recorded; a second pause was
    recorded though the first admin's pause stood."""
    said = flashed(admin, post(admin, "/admin/queues/resume", {"queue": "mail"}))
    assert "Queue 'mail' was not paused." in html.unescape(said)
    post(admin, "/admin/queues/pause", {"queue": "mail"})
    said = flashed(admin, post(admin, "/admin/queues/pause", {"queue": "mail"}))
    assert "Queue 'mail' was paused already" in html.unescape(said)
    said = flashed(admin, post(admin, "/admin/queues/unlimit", {"queue": "mail"}))
    assert "Queue 'mail' had no limits." in html.unescape(said)
    with db.connect() as conn:
        actions = conn.execute(text("SELECT action FROM operator_actions")).scalars().all()
    assert actions == ["pause"]
