"""The cap on reports one user may have waiting or being built, exact across processes."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from app.jobs.testing import drain
from app.models import Export, Job, User
from app.reports import service
from tests.processes import wait_for
from tests.web import CSV, export_id, sign_up, upload


@pytest.fixture
def ada(app: Flask) -> FlaskClient:
    client = app.test_client()
    sign_up(client, "ada@example.com")
    return client


def counts(session: Session) -> tuple[int, int]:
    """(exports, report jobs) in the database."""
    exports = session.scalar(select(func.count()).select_from(Export)) or 0
    jobs = session.scalar(select(func.count()).where(Job.name == "reports.build")) or 0
    return exports, jobs


def test_upload_answers_429_when_the_user_has_three_reports_in_flight(
    ada: FlaskClient, session: Session
) -> None:
    for _ in range(3):
        export_id(upload(ada))
    response = upload(ada)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(service.RETRY_AFTER)
    assert "You already have 3 reports waiting or being built" in response.text
    assert "Try again in a minute" in response.text
    assert counts(session) == (3, 3)  # the refused upload wrote nothing


def test_reports_that_are_ready_or_failed_no_longer_count(
    ada: FlaskClient, db: Engine, session: Session
) -> None:
    for _ in range(3):
        export_id(upload(ada))
    drain(db)
    first = export_id(upload(ada))
    export_id(upload(ada))
    with db.begin() as conn:  # a build that ran out of attempts
        conn.execute(
            update(Job).where(Job.payload["export_id"].as_integer() == first).values(state="failed")
        )
    export_id(upload(ada))
    assert upload(ada).status_code == 303
    assert upload(ada).status_code == 429


def test_the_cap_is_per_user_and_a_setting(app: Flask, ada: FlaskClient) -> None:
    app.config["PILLARS_SETTINGS"] = replace(
        app.config["PILLARS_SETTINGS"], reports_in_flight_max=1
    )
    export_id(upload(ada))
    assert upload(ada).status_code == 429
    bob = app.test_client()
    sign_up(bob, "bob@example.com")
    export_id(upload(bob))


def test_concurrent_uploads_of_one_user_are_counted_one_after_the_other(
    db: Engine, session: Session
) -> None:
    """Two web processes (two connections) racing for the last place: one gets it."""
    user = User(email="ada@example.com", password_hash="x")
    session.add(user)
    session.commit()
    outcome: list[str] = []

    def second_process() -> None:
        with Session(db) as other:
            try:
                service.create_export(other, user.id, "b.csv", CSV, in_flight_max=1)
                other.commit()
                outcome.append("accepted")
            except service.TooManyInFlight:
                outcome.append("refused")

    with Session(db) as first:
        service.create_export(first, user.id, "a.csv", CSV, in_flight_max=1)  # not committed yet
        racer = threading.Thread(target=second_process)
        racer.start()
        wait_for(
            lambda: waiting_for_a_lock(db) or not racer.is_alive(),
            timeout=30,
            what="the second upload to wait or finish",
        )
        first.commit()
    racer.join(30)
    assert outcome == ["refused"]
    assert counts(session) == (1, 1)


def waiting_for_a_lock(db: Engine) -> bool:
    with db.connect() as conn:
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return bool(conn.execute(text(query)).scalar_one())
