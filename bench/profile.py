"""Where a default worker's wall-clock time goes while it drains: py-spy, summarised.

`py-spy record --idle` samples the real `worker.py` process (sleeping and
waiting included, which is the point: a queue worker mostly waits) while it
works off a backlog at the documented defaults. The raw samples are kept in
`.pillars/bench/` (open them with any flame-graph viewer); the summary
prints, for the loop's own thread, the share of time under each function
(inclusive) and at each innermost frame (where it actually sat).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import pillars

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".pillars" / "bench"

#: A frame of py-spy's raw format, "function (file:line)".
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?P<line>:\d+)?\)$")


def _spy(out: Path) -> pillars.Observer:
    @contextmanager
    def observe(pids: list[int]) -> Iterator[None]:
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pids[0]),
                "--idle",
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # attached and sampling before the backlog arrives
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
            if not out.exists():
                raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')}")

    return observe


def _name(frame: str, line: bool = False) -> str:
    """`function (file)`, the file relative to the project or site-packages; `line` keeps
    the line number (where in a function the thread sat)."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match["file"].split("site-packages/")[-1].split(str(ROOT) + "/")[-1]
    return f"{match['func']} ({file}{(match['line'] or '') if line else ''})"


def summarize(samples: Path, top: int = 14) -> str:
    """Inclusive and innermost shares of the loop thread's samples (the one under Worker.run)."""
    inclusive: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    total = 0
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        raw_frames = stack.split(";")
        frames = [_name(f) for f in raw_frames]
        if not any(f.startswith("Worker.run (app/jobs/worker.py") for f in frames):
            continue
        weight = int(count)
        total += weight
        for name in set(frames):
            inclusive[name] += weight
        innermost[_name(raw_frames[-1], line=True)] += weight
    if not total:
        return "no samples of the worker loop"
    lines = [f"worker loop thread: {total} samples at 250/s"]
    lines.append("  inclusive (time under the function):")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines.append("  innermost (where the thread was):")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in innermost.most_common(top)]
    return "\n".join(lines)


def profile(target: pillars.Target, n: int) -> str:
    """Drain `n` jobs through one default worker under py-spy; the rate and the summary."""
    OUT.mkdir(parents=True, exist_ok=True)
    samples = OUT / f"worker-default-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    drain = pillars.drain(target, n, pillars.Setup(), observe=_spy(samples))
    return (
        f"profile of a default worker draining {n:,} jobs ({drain.rate:,.0f} jobs/s under "
        f"py-spy; samples in {samples.relative_to(ROOT)}):\n{summarize(samples)}"
    )
