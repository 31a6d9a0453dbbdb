"""`python3 dev.py up` as a newcomer runs it: three pillars, and a clean stop that reads clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import answers, free_port
from tests.processes import wait_for

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_stopping_dev_up_reports_every_process_stopped_cleanly(
    process_env: dict[str, str], tmp_path: Path, how: signal.Signals
) -> None:
    port = free_port()
    log = tmp_path / "up.log"
    env = {**process_env, "PORT": str(port)}
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, str(ROOT / "dev.py"), "up"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, as a terminal's foreground job
        )
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), timeout=90, what="web")
        wait_for(lambda: b"cron INFO" in log.read_bytes(), timeout=60, what="cron to start")
        wait_for(lambda: b"worker INFO" in log.read_bytes(), timeout=60, what="the worker")
        if how == signal.SIGINT:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
        else:
            up.send_signal(signal.SIGTERM)  # a supervisor signals dev.py alone
        up.wait(timeout=60)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    output = log.read_text()
    for process in ("web.1", "worker.1", "cron.1"):
        assert f"{process} stopped (rc=0)" in output, output[-3000:]
    assert "rc=-" not in output
