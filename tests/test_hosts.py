"""Workers on "other machines": equal pids, equal host names, clocks that disagree.

Nothing may assume one host. Each worker below runs in PID and UTS
namespaces of its own (`unshare`), so two of them are both pid 1 on hosts
of the same name: only the random part of their process ids tells them
apart, and that must be enough for claims, liveness and rescue. Clocks are
moved hours ahead and behind (`tests/skewed_clock`): every decision about
time is the database's, so nothing a worker or cron does may change with
them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.jobs import JobRequest, enqueue, enqueue_many
from tests.processes import ROOT, start, stop, wait_for

pytestmark = pytest.mark.slow

UNSHARE = "/usr/bin/unshare"
#: A sitecustomize that moves a Python process's wall clock (see its docstring).
SKEWED_CLOCK = ROOT / "tests" / "skewed_clock"


def needs(path: str, package: str, why: str) -> None:
    if not Path(path).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {path} is missing ({why}): install Debian's {package}")
        pytest.skip(f"needs {path} ({why}): apt-get install {package}")


class Elsewhere:
    """`python worker.py` as pid 1 of a PID namespace, on a host named `hostname`."""

    def __init__(self, hostname: str, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        script = f'hostname {hostname} && exec "$0" "$@"'
        command = [UNSHARE, "--fork", "--pid", "--uts", "--kill-child=SIGKILL", "--"]
        command += ["sh", "-c", script, sys.executable, str(ROOT / "worker.py"), *args]
        with log.open("ab") as out:
            self.outer = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        """The worker's pid as this machine sees it (inside, it is 1)."""

        def inner() -> int:
            children = Path(f"/proc/{self.outer.pid}/task/{self.outer.pid}/children")
            listed = children.read_text().split() if children.exists() else []
            return int(listed[0]) if listed else 0

        return wait_for(inner, what="the worker inside its namespace")

    def process_id(self) -> str:
        """The id the worker registered under, from its log (`worker <id> started`)."""
        found = re.search(r"worker (\S+) started", self.log.read_text())
        return found[1] if found else ""

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def stop(self) -> int:
        if self.outer.poll() is None:
            self.signal(signal.SIGTERM)
        return self.outer.wait(30)


@pytest.fixture
def elsewhere(process_env: dict[str, str], tmp_path: Path) -> Iterator[list[Elsewhere]]:
    """Two workers, each pid 1 on a host named `worker`."""
    needs(UNSHARE, "util-linux", "PID and UTS namespaces")
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but not root: PID and UTS namespaces need root")
        pytest.skip("PID and UTS namespaces need root")
    workers = [
        Elsewhere("worker", process_env, tmp_path / f"{name}.log", "--concurrency", "2")
        for name in ("a", "b")
    ]
    yield workers
    for worker in workers:
        if worker.outer.poll() is None:
            worker.outer.kill()
        worker.outer.wait(30)


def rows(engine: Engine, query: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(query), params).all())


def record(engine: Engine, ledger: Path, marker: str, sleep: float) -> uuid.UUID:
    with Session(engine) as session:
        job_id = enqueue(
            session, "test.record", {"path": str(ledger), "marker": marker, "sleep": sleep}
        )
        session.commit()
    return job_id


def test_workers_with_equal_pids_on_equally_named_hosts_keep_their_own_jobs(
    db: Engine, elsewhere: list[Elsewhere], tmp_path: Path
) -> None:
    first, second = elsewhere
    wait_for(
        lambda: len(rows(db, "SELECT 1 FROM workers WHERE kind = 'worker'")) == 2,
        what="both workers to register",
    )
    processes = rows(db, "SELECT worker_id, hostname, pid FROM workers ORDER BY worker_id")
    assert [(host, pid) for _, host, pid in processes] == [("worker", 1), ("worker", 1)]
    assert processes[0].worker_id != processes[1].worker_id
    ledger = tmp_path / "ledger"
    jobs = [record(db, ledger, str(n), sleep=3) for n in range(4)]
    wait_for(
        lambda: len(rows(db, "SELECT 1 FROM jobs WHERE state = 'running'")) == 4,
        what="both workers to run two jobs each",
    )
    victim = rows(db, "SELECT locked_by FROM jobs WHERE job_id = :id", id=jobs[0])[0].locked_by
    doomed = next(w for w in elsewhere if wait_for(w.process_id, what="its id") == victim)
    doomed.signal(signal.SIGKILL)
    wait_for(
        lambda: len(rows(db, "SELECT 1 FROM jobs WHERE state = 'succeeded'")) == 4,
        timeout=60,
        what="every job, the dead worker's rescued by the live one",
    )
    survivor = second if doomed is first else first
    assert survivor.stop() == 0
    attempts = rows(db, "SELECT locked_by, attempts FROM jobs ORDER BY job_id")
    rescued = [a for a in attempts if a.attempts == 2]
    assert len(rescued) == 2  # exactly the dead worker's two jobs ran again
    assert all(a.locked_by != victim for a in attempts)
    assert not rows(db, "SELECT 1 FROM workers WHERE worker_id = :id", id=victim)


def skewed(env: dict[str, str], hours: float) -> dict[str, str]:
    """`env` for a process whose wall clock is `hours` off; its monotonic clock stays true."""
    path = os.pathsep.join(p for p in (str(SKEWED_CLOCK), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "PILLARS_TEST_CLOCK_SKEW": str(hours * 3600)}


def test_workers_whose_clocks_disagree_by_hours_run_jobs_on_the_database_clock(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    ahead = start("worker.py", skewed(process_env, +2), log=tmp_path / "ahead.log")
    behind = start("worker.py", skewed(process_env, -2), log=tmp_path / "behind.log")
    try:
        for log in (tmp_path / "ahead.log", tmp_path / "behind.log"):
            wait_for(lambda: "listening" in log.read_text(), what=log.name)  # noqa: B023
        with Session(db) as session:
            enqueue_many(
                session,
                [
                    JobRequest(
                        "test.record",
                        {"path": str(ledger), "marker": str(n), "sleep": 0.2},
                        delay=2.0 if n % 2 else 0.0,
                    )
                    for n in range(40)
                ],
            )
            session.commit()
        wait_for(
            lambda: len(rows(db, "SELECT 1 FROM jobs WHERE state = 'succeeded'")) == 40,
            timeout=60,
            what="every job",
        )
        time.sleep(2.0)  # a few heartbeats more: neither worker is taken for dead or frozen
        early = rows(db, "SELECT job_id FROM jobs WHERE started_at < run_at")
        runners = {r.locked_by for r in rows(db, "SELECT locked_by FROM jobs")}
        lost = rows(db, "SELECT job_id FROM jobs WHERE errors <> '[]'::jsonb")
    finally:
        assert stop(ahead) == 0 and stop(behind) == 0
    assert early == [] and lost == []
    assert len(runners) == 2  # both clocks' workers ran jobs


def test_cron_whose_clock_is_hours_off_enqueues_on_the_database_clock(
    db: Engine, process_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**process_env, "JOB_MODULES": "tests.jobs,tests.schedules"}
    for offset in (+2, -2):
        log = tmp_path / f"cron{offset:+}h.log"
        cron = start("cron.py", skewed(env, offset), log=log)
        try:
            wait_for(
                lambda: (
                    len(rows(db, "SELECT 1 FROM jobs WHERE cron_name = 'test.every_second'")) >= 4
                ),
                timeout=30,
                what=f"a cron {offset:+} h off to enqueue every second",
            )
        finally:
            assert stop(cron) == 0
        occurrences = rows(
            db,
            "SELECT scheduled_for, created_at FROM jobs WHERE cron_name = 'test.every_second'"
            " ORDER BY scheduled_for",
        )
        # On the database clock: none ahead of its enqueue, none more than a moment late.
        assert all(o.scheduled_for <= o.created_at for o in occurrences), offset
        assert all((o.created_at - o.scheduled_for).total_seconds() < 5 for o in occurrences)
        with db.begin() as conn:
            conn.execute(text("TRUNCATE jobs, cron_state, cron_events, workers"))
