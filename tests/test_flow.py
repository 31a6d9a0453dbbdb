"""Flow control: concurrency keys, ordering keys and queue limits, as the queue sees them."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import get_settings
from app.jobs import JobRequest, claims, enqueue, enqueue_many, flow, holds, operations, sql
from app.jobs.execution import execute
from app.jobs.testing import drain
from app.models import Job
from tests import factory


def states(engine: Engine, ids: list[uuid.UUID]) -> list[str]:
    with Session(engine) as session:
        found = {j.job_id: j.state for j in session.query(Job).filter(Job.job_id.in_(ids))}
    return [found[i] for i in ids]


def keyed(engine: Engine, count: int, **options: Any) -> list[uuid.UUID]:
    with Session(engine) as session:
        ids = [enqueue(session, "test.add", {"a": n}, **options) for n in range(count)]
        session.commit()
    return ids


def claim(engine: Engine, worker: str = "w", limit: int = 10) -> list[Any]:
    with engine.begin() as conn:
        return claims.claim(conn, worker, None, limit)


def finish(engine: Engine, held: list[Any], worker: str = "w") -> None:
    with engine.begin() as conn:
        claims.save_outcomes(conn, worker, [execute(job, engine, get_settings()) for job in held])


def test_jobs_beyond_their_keys_limit_wait_out_of_every_claims_sight(db: Engine) -> None:
    ids = keyed(db, 3, concurrency_key="smtp", concurrency_limit=2)
    assert states(db, ids) == ["waiting"] * 3
    assert claim(db) == []  # nothing is let in until the promoter runs
    assert claims.promote(db) == 2
    assert states(db, ids) == ["queued", "queued", "waiting"]
    assert claims.promote(db) == 0
    assert sorted(j.job_id for j in claim(db)) == sorted(ids[:2])
    assert claims.promote(db) == 0  # two running: no room


def test_a_finished_job_lets_the_next_of_its_key_in(db: Engine) -> None:
    ids = keyed(db, 3, concurrency_key="smtp", concurrency_limit=2)
    claims.promote(db)
    held = claim(db)
    finish(db, held[:1])
    with db.begin() as conn:  # the save marked the next one fresh; a cycle says so
        assert claims.cycle(conn, "w", (), None, 0).promote
    assert claims.promote(db) == 1
    assert states(db, ids)[2] == "queued"


def test_the_cycle_that_frees_a_key_says_so_itself(db: Engine) -> None:
    """The saving statement reports the job it marked fresh: its own snapshot cannot
    see the mark, and an idle worker would otherwise leave the key's next job waiting."""
    ids = keyed(db, 2, concurrency_key="smtp", concurrency_limit=1)
    claims.promote(db)
    held = claim(db)
    outcomes = [execute(job, db, get_settings()) for job in held]
    with db.begin() as conn:
        done = claims.cycle(conn, "w", outcomes, None, 0)
    assert done.saved.succeeded == [ids[0]] and done.promote
    with db.begin() as conn:  # and a cycle that only claims sees the mark
        assert claims.cycle(conn, "w", (), None, 0).promote


def test_keys_do_not_count_against_each_other(db: Engine) -> None:
    a = keyed(db, 2, concurrency_key="user:1")
    b = keyed(db, 2, concurrency_key="user:2")
    assert claims.promote(db) == 2
    assert states(db, a + b) == ["queued", "waiting", "queued", "waiting"]


def test_a_key_with_a_backlog_takes_turns_with_the_others(db: Engine) -> None:
    with Session(db) as session:
        busy = [enqueue(session, "test.add", {"a": n}, concurrency_key="user:1") for n in range(4)]
        session.commit()
        single = enqueue(session, "test.add", {"a": 9}, concurrency_key="user:2")
        session.commit()
    drained = drain(db)
    assert drained.succeeded.index(single) == 1  # right after the first of the backlog
    assert set(drained.succeeded) == {*busy, single}


def test_the_decorator_gives_a_key_from_the_payload(db: Engine) -> None:
    with Session(db) as session:
        job_id = enqueue(session, "test.per_user", {"user_id": 7})
        other = enqueue(session, "test.per_user", {"user_id": 7}, concurrency_key="vip")
        session.commit()
        rows = {j.job_id: j for j in session.query(Job)}
    assert (rows[job_id].flow_key, rows[job_id].flow_limit) == ("user:7", 2)
    assert (rows[other].flow_key, rows[other].flow_kind) == ("vip", "concurrency")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"concurrency_key": "a", "ordering_key": "b"}, "not both"),
        ({"concurrency_limit": 2}, "need a key"),
        ({"concurrency_key": "a", "concurrency_limit": 0}, "concurrency_limit must be between"),
        ({"concurrency_key": "a\x00"}, "must not contain a NUL"),
        ({"concurrency_key": "x" * 300}, "at most 256 bytes"),
        ({"ordering_key": "a", "on_failure": "retry"}, "on_failure must be"),
        ({"concurrency_key": "user:{missing}"}, "does not fit the payload"),
        ({"concurrency_key": "user:{a.__class__}"}, "may only name payload keys"),
    ],
)
def test_bad_flow_options_are_refused_naming_them(
    session: Session, options: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        enqueue(session, "test.add", {"a": 1}, **options)


def test_a_key_template_whose_format_does_not_suit_the_value_is_refused_by_name(
    session: Session,
) -> None:
    """str.format raises TypeError here, which callers catching ValueError missed."""
    with pytest.raises(ValueError, match="does not fit the payload: unsupported format string"):
        enqueue(session, "test.echo", {"data": [1]}, concurrency_key="n:{data:,}")


def test_an_ordering_key_runs_its_jobs_one_at_a_time_in_order_across_retries(
    db: Engine, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with Session(db) as session:
        for marker in "abc":
            enqueue(
                session,
                "test.flaky",
                {"path": str(runs), "marker": marker},
                ordering_key="doc:1",
            )
        session.commit()
    drain(db)
    # b would be due long before a's retry in a plain queue; here it waits for a.
    assert runs.read_text().split() == ["a", "a", "b", "b", "c", "c"]


def test_a_blocking_ordering_key_holds_its_jobs_after_a_failure_until_an_operator_acts(
    db: Engine, tmp_path: Path
) -> None:
    with Session(db) as session:
        broken = enqueue(
            session, "test.fail", {}, ordering_key="doc:2", on_failure="block", max_attempts=1
        )
        after = enqueue(session, "test.add", {"a": 1}, ordering_key="doc:2")
        session.commit()
    drain(db)
    assert states(db, [broken, after]) == ["failed", "waiting"]
    with Session(db) as session:
        assert operations.delete(session, broken)
        session.commit()
    drain(db)
    assert states(db, [after]) == ["succeeded"]


def test_an_ordering_key_that_continues_moves_on_after_a_failure(db: Engine) -> None:
    with Session(db) as session:
        broken = enqueue(session, "test.fail", {}, ordering_key="doc:3", max_attempts=1)
        after = enqueue(session, "test.add", {"a": 1}, ordering_key="doc:3")
        session.commit()
    drain(db)
    assert states(db, [broken, after]) == ["failed", "succeeded"]


def test_cancelling_a_keyed_job_gives_its_place_to_the_next(db: Engine) -> None:
    ids = keyed(db, 2, concurrency_key="k")
    claims.promote(db)
    with Session(db) as session:
        assert operations.cancel(session, ids[0])
        session.commit()
    claims.promote(db)
    assert states(db, ids) == ["cancelled", "queued"]


def test_a_retried_keyed_job_goes_back_through_its_keys_limit(db: Engine) -> None:
    failed = factory.job(db, "test.fail", {}, concurrency_key="k", max_attempts=1)
    drain(db)
    others = keyed(db, 1, concurrency_key="k")
    claims.promote(db)
    assert states(db, others) == ["queued"]
    with Session(db) as session:
        assert operations.retry(session, failed)
        session.commit()
    claims.promote(db)
    assert states(db, [failed, *others]) == ["waiting", "queued"]


def test_a_rescued_job_keeps_its_keys_place(db: Engine) -> None:
    ids = keyed(db, 2, concurrency_key="k")
    claims.promote(db)
    claim(db, "frozen")
    time.sleep(1.2)
    with db.begin() as conn:
        conn.execute(text("UPDATE jobs SET heartbeat_at = now() - interval '1 hour'"))
        assert len(claims.rescue(conn, grace=1, stale=1)) == 1
    claims.promote(db)
    assert states(db, ids) == ["queued", "waiting"]


def test_a_queue_limit_caps_running_jobs_across_workers(db: Engine) -> None:
    with Session(db) as session:
        flow.set_limit(session, "mail", concurrency=2, set_by="test")
        ids = [enqueue(session, "test.add", {"a": n}, queue="mail") for n in range(5)]
        session.commit()
    with db.begin() as conn:
        found = claims.cycle(conn, "w", (), None, 10)
    assert found.claimed == [] and found.limited == ["mail"]
    first = claims.claim_limited(db, "w1", "mail", 10)
    second = claims.claim_limited(db, "w2", "mail", 10)
    assert (len(first), len(second)) == (2, 0)
    finish(db, first[:1], "w1")
    assert len(claims.claim_limited(db, "w2", "mail", 10)) == 1
    assert Counter(states(db, ids)) == {"running": 2, "succeeded": 1, "queued": 2}


def test_the_limited_claim_of_a_queue_whose_limits_are_gone_claims_nothing(db: Engine) -> None:
    """The worker claims from a limited queue under its row lock, so the limits cannot
    vanish meanwhile; should the statement ever run without them, no limit must
    not mean every due job (LIMIT NULL is no limit at all)."""
    with Session(db) as session:
        for n in range(5):
            enqueue(session, "test.add", {"a": n}, queue="mail")
        session.commit()
    with db.begin() as conn:
        params = {"queue": "mail", "limit": 3, "worker_id": "w"}
        assert conn.execute(sql.CLAIM_LIMITED, params).all() == []


def test_a_rate_limit_lets_a_burst_through_then_refills(db: Engine) -> None:
    with Session(db) as session:
        flow.set_limit(session, "smtp", rate=flow.parse_rate("4/s"), burst=2)
        for n in range(10):
            enqueue(session, "test.add", {"a": n}, queue="smtp")
        session.commit()
    assert len(claims.claim_limited(db, "w", "smtp", 10)) == 2  # the burst
    assert len(claims.claim_limited(db, "w", "smtp", 10)) == 0
    time.sleep(0.6)  # about two more tokens
    assert 1 <= len(claims.claim_limited(db, "w", "smtp", 10)) <= 3


def test_clearing_the_limits_returns_the_queue_to_the_ordinary_claim(db: Engine) -> None:
    with Session(db) as session:
        flow.set_limit(session, "mail", concurrency=1)
        enqueue_many(session, [JobRequest("test.add", {"a": n}, queue="mail") for n in range(3)])
        session.commit()
        assert flow.clear_limit(session, "mail")
        assert not flow.clear_limit(session, "mail")
        session.commit()
    assert len(claim(db)) == 3


@pytest.mark.parametrize(
    ("text_rate", "per_second"), [("10/s", 10.0), ("600/m", 10.0), ("36/h", 0.01), ("2.5/s", 2.5)]
)
def test_rates_read_as_people_write_them(text_rate: str, per_second: float) -> None:
    assert flow.parse_rate(text_rate) == pytest.approx(per_second)


@pytest.mark.parametrize(
    "bad",
    [
        "10",
        "ten/s",
        "10/d",
        "0/s",
        "-1/s",
        "1e9/s",
        "10/s; DROP",
        "0.000001/h",
        "0." + "0" * 320 + "1/s",
    ],
)
def test_rates_that_mean_nothing_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        flow.parse_rate(bad)


@pytest.mark.parametrize(
    ("column", "value"),
    [("rate", "Infinity"), ("rate", "NaN"), ("tokens", "-Infinity"), ("tokens", "NaN")],
)
def test_a_queue_limit_holds_only_numbers_a_token_bucket_can_use(
    db: Engine, column: str, value: str
) -> None:
    """Infinity and NaN pass `rate > 0` (a limit lifted); tokens of -Infinity failed every
    limited claim ('integer out of range')."""
    with db.begin() as conn:
        conn.execute(text("INSERT INTO queue_limits (queue, rate, burst) VALUES ('lq', 1, 2)"))
    with pytest.raises(IntegrityError, match="finite"), db.begin() as conn:
        conn.execute(
            text(f"UPDATE queue_limits SET {column} = CAST(:value AS double precision)"),
            {"value": value},
        )


def test_a_waiting_job_must_have_a_key_to_wait_for(db: Engine) -> None:
    """One without a key failed every promotion ('<' between None and str)."""
    job_id = factory.job(db, "test.add", {"a": 1})
    with pytest.raises(IntegrityError, match="waiting_keyed"), db.begin() as conn:
        conn.execute(
            text("UPDATE jobs SET state = 'waiting', flow_fresh = true WHERE job_id = :id"),
            {"id": job_id},
        )


def test_enqueue_many_keys_each_job_like_enqueue(db: Engine) -> None:
    with Session(db) as session:
        ids = enqueue_many(
            session,
            [JobRequest("test.add", {"a": n}, ordering_key="doc:9") for n in range(3)]
            + [JobRequest("test.per_user", {"user_id": 5})],
        )
        session.commit()
    assert states(db, ids) == ["waiting"] * 4
    assert claims.promote(db) == 2  # one of the ordering key, one of user:5 (limit 2)


def test_a_waiting_job_says_which_key_holds_it_and_how_full_it_is(db: Engine) -> None:
    ids = keyed(db, 2, concurrency_key="user:7")
    claims.promote(db)
    with db.connect() as conn:
        assert holds.why_not_running(conn, ids[1]) == (
            "waiting for key user:7: 1 of 1 running or next"
        )
        assert holds.why_not_running(conn, ids[0]) == "it waits for a free worker slot"
        assert holds.held_back(conn) == {"default": (1, 0)}
        [use] = holds.busiest_keys(conn)
    assert (use.key, use.limit, use.active, use.waiting) == ("user:7", 1, 1, 1)


def test_a_queued_job_in_a_full_queue_says_so(db: Engine) -> None:
    with Session(db) as session:
        flow.set_limit(session, "mail", concurrency=1)
        first, second = (enqueue(session, "test.add", {"a": n}, queue="mail") for n in range(2))
        session.commit()
    claims.claim_limited(db, "w", "mail", 5)
    with db.connect() as conn:
        assert holds.why_not_running(conn, second) == (
            "its queue mail is at its limit: 1 of 1 running"
        )
        assert holds.why_not_running(conn, first) is None  # running
        assert holds.held_back(conn) == {"mail": (0, 1)}


def test_flask_jobs_limit_sets_shows_and_clears_queue_limits(app: Flask, db: Engine) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["jobs", "limit", "mail", "--concurrency", "5", "--rate", "10/s"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "mail: at most 5 running, 10/s (burst 10)"
    assert "mail: at most 5 running" in runner.invoke(args=["jobs", "limits"]).output
    for bad, words in (
        (["mail", "--rate", "ten"], "a rate reads like"),
        (["mail", "--concurrency", "0"], "concurrency must be between"),
        (["a,b", "--concurrency", "1"], "queue must be"),
        (["mail"], "give a concurrency limit, a rate"),
        (["mail", "--clear", "--concurrency", "1"], "give it alone"),
    ):
        failed = runner.invoke(args=["jobs", "limit", *bad])
        assert failed.exit_code != 0 and words in failed.output, (bad, failed.output)
    assert runner.invoke(args=["jobs", "limit", "mail", "--clear"]).output.strip() == (
        "mail: limits lifted"
    )
    assert "no queue has limits" in runner.invoke(args=["jobs", "limits"]).output
