"""Hostile uploads: CPU time of the upload request's checks, and of the worker's build.

    .venv/bin/python -m bench.uploads [--baseline REV] [--timeout SECONDS] [--runs N]

For each file shape (up to UPLOAD_MAX_BYTES) it prints the CPU time the
upload view spends on the file (cleaning the name, `csvfile.check_head`),
beside what the code at git revision `--baseline` spent on the same bytes
(its `csvfile.parse`, measured in a subprocess on a copy of that revision's
`app/`, killed after `--timeout` seconds). Then the worker's whole report
build on a valid 2 MB CSV, before and after. Figures, not assertions: run it
on a quiet machine and compare the columns of one run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from app.reports import breakdown, csvfile, render, stats, summary
from app.reports.names import clean_filename

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 2 * 1024 * 1024
#: The last revision whose upload request parsed the whole file with csv.Sniffer.
BASELINE = "c1d0b5c"


def fill(unit: bytes, size: int = LIMIT) -> bytes:
    return unit * (size // len(unit))


def valid_csv(size: int = LIMIT) -> bytes:
    """A realistic table of about `size` bytes: numbers, a category, free text."""
    rows, n, total = [b"id,region,revenue,units,month,comment\n"], 0, 0
    while total < size - 100:
        row = b"%d,r%d,%d.%02d,%d,%d,note %d\n" % (
            n,
            n % 7,
            n * 37 % 100_000,
            n % 100,
            n % 400,
            n % 12 + 1,
            n,
        )
        rows.append(row)
        total, n = total + len(row), n + 1
    return b"".join(rows)


SHAPES: list[tuple[str, Callable[[], bytes]]] = [
    ('first line of `, "` x 5,000 (15 kB)', lambda: fill(b', "', 15_000) + b"\n1\n"),
    ('first line of `, "` to 2 MB', lambda: fill(b', "') + b"\n1\n"),
    ("first line of quotes to 2 MB", lambda: fill(b'"') + b"\n1\n"),
    ("first line of commas to 2 MB", lambda: fill(b",") + b"\n1\n"),
    ("first line of `;\\t,` to 2 MB", lambda: fill(b";\t,") + b"\n1\n"),
    (
        "10,000 columns",
        lambda: b",".join(b"c%d" % i for i in range(10_000)) + b"\n" + fill(b"1,", 20_000),
    ),
    ("one 2 MB cell", lambda: b"a,b\n" + fill(b"x") + b",1\n"),
    ("one 2 MB quoted cell", lambda: b'a,b\n"' + fill(b'x""') + b'",1\n'),
    ("1,000,000 lines of `1`", lambda: b"n\n" + fill(b"1\n", LIMIT - 2)),
    ("valid CSV, 2 MB", valid_csv),
]

OLD_CHECK = """
import sys, time
from app.reports import csvfile
data = open(sys.argv[1], "rb").read()
start = time.process_time()
try:
    csvfile.parse(data)
except csvfile.InvalidCSV:
    pass
print(time.process_time() - start)
"""

OLD_BUILD = """
import sys, time
from app.reports import csvfile, render, stats
data = open(sys.argv[1], "rb").read()
start = time.process_time()
table = csvfile.parse(data)
summaries = stats.summarize(table)
render.pdf("bench.csv", len(table.rows), summaries)
stats.to_csv(summaries)
print(time.process_time() - start)
"""


def new_check(data: bytes) -> None:
    """What POST /exports does with the bytes, besides reading them and writing the row."""
    clean_filename("bench.csv")
    try:
        csvfile.check_head(data)
    except csvfile.InvalidCSV:
        pass


def new_build(data: bytes) -> None:
    """What reports.build does between loading the upload and saving the results."""
    table = csvfile.parse(data)
    summaries = stats.summarize(table)
    found = breakdown.breakdown(table, summaries)
    render.pdf("bench.csv", len(table.rows), summaries, found)
    summary.write(summaries)


def cpu(work: Callable[[], None], runs: int) -> float:
    """Median CPU seconds of `runs` calls."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return statistics.median(times)


def baseline_tree(rev: str, into: Path) -> Path:
    """A copy of the revision's `app/` package, importable from `into`."""
    archive = subprocess.run(
        ["git", "archive", rev, "app"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def old(script: str, tree: Path, data: bytes, timeout: float) -> float | None:
    """CPU seconds the baseline spent, or None when it was killed at the timeout."""
    sample = tree / "sample.csv"
    sample.write_bytes(data)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(sample)],
            cwd=tree,  # the baseline's `app` comes first on sys.path
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return None
    return float(done.stdout.strip())


def shown(seconds: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} s (killed)" if seconds is None else f"{seconds * 1000:,.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description="Hostile uploads: request and build CPU time")
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per baseline run")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pillars-bench-uploads-") as tmp:
        tree = baseline_tree(args.baseline, Path(tmp))
        print(f"CPU time per upload request (median of {args.runs}); baseline {args.baseline}")
        print(f"{'shape':<38} {'bytes':>10} {'now':>12} {'baseline':>20}")
        for label, make in SHAPES:
            data = make()
            now = cpu(partial(new_check, data), args.runs)
            before = old(OLD_CHECK, tree, data, args.timeout)
            print(
                f"{label:<38} {len(data):>10,} {now * 1000:>9,.2f} ms "
                f"{shown(before, args.timeout):>20}",
                flush=True,
            )
        data = valid_csv()
        now = cpu(partial(new_build, data), max(1, args.runs // 2))
        before = old(OLD_BUILD, tree, data, args.timeout * 6)
        rows = data.count(b"\n") - 1
        print(f"\nworker build of a valid 2 MB CSV ({rows:,} rows, 6 columns)")
        print(f"  now {now:,.2f} s CPU, baseline {shown(before, args.timeout * 6)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
