"""Running wrk against the site: a Lua script that posts an upload, and reading its figures."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Figures:
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    errors: int


def lua_string(data: bytes) -> str:
    """`data` as a Lua string literal (decimal escapes keep CR LF intact)."""
    safe = (chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\{b:03d}" for b in data)
    return '"' + "".join(safe) + '"'


def post_script(path: Path, body: bytes, content_type: str, cookie: str) -> Path:
    """Write a wrk script that POSTs `body` with the session `cookie` on every request."""
    path.write_text(
        f'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(body)}\n"
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f'wrk.headers["Cookie"] = "{cookie}"\n'
    )
    return path


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def parse(output: str) -> Figures:
    """Read p50, p99, requests/s and error count from `wrk --latency` output."""
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not (p50 and p99 and rate):
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return Figures(_ms(p50.group(1)), _ms(p99.group(1)), float(rate.group(1)), errors)


def run(url: str, script: Path, seconds: int, connections: int) -> Figures:
    """Run wrk for `seconds` (bounded: it stops by itself) and return its figures."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    return parse(done.stdout)
