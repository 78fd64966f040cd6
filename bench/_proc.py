"""Process plumbing shared by the benchmarks: servers in their own processes, free ports, the
load generator, a throwaway PostgreSQL database, and the results table."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-secret"  # noqa: S105 (signs local benchmark posts only)
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# The server gets one core and the load generator the other (when the machine has two).
SERVER_CPU = 0
LOADGEN_CPU = 1 if (os.cpu_count() or 1) > 1 else 0
START_TIMEOUT_S = 60.0
# Set to another checkout's root to run that version of the service under the same load.
SERVICE_ROOT_ENV = "BENCH_SERVICE_ROOT"


# A measured child runs its measured part inside `operator.call`, and callgrind collects only
# inside that C function (`_operator_call`): imports, set-up and warm-up are left out of the count.
_CALLGRIND = (
    "valgrind",
    "--tool=callgrind",
    "--collect-atstart=no",
    "--toggle-collect=_operator_call*",
    "--callgrind-out-file=/dev/null",
)
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def run_child(
    command: Sequence[str], root: Path, *, instructions: bool, what: str
) -> dict[str, Any]:
    """Run a benchmark's measured child process on the code of the checkout at `root`; the
    figures it prints as its last line (JSON), with callgrind's count of what its
    `operator.call` ran as "instructions" when asked."""
    if instructions:
        command = [*_CALLGRIND, *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    done = subprocess.run(list(command), cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {what} run failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if instructions:
        found = _COLLECTED.search(done.stderr)
        if found is None:
            raise RuntimeError(f"callgrind printed no instruction count:\n{done.stderr[-3000:]}")
        figures["instructions"] = int(found.group(1))
    return figures


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pin(pid: int, cpu: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        # Every thread of the process: the writer thread shares the server's core.
        for task in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(task), {cpu})
        os.sched_setaffinity(pid, {cpu})


def wait_ready(port: int, process: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    """Poll the server until it answers, or fail with its output."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer within {START_TIMEOUT_S} s")


@dataclass
class Server:
    """A server process under test."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self) -> None:
        """Ask it to stop (SIGTERM), then make sure."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's output, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def started(
    command: Sequence[str],
    port: int,
    env: Mapping[str, str] | None,
    log_dir: Path,
    pin: bool,
    cwd: Path = REPO,
) -> Iterator[Server]:
    """Run a server process until the block ends."""
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=dict(env or os.environ), stdout=log, stderr=log
        )
    server = Server(process, port, log_path)
    try:
        try:
            wait_ready(port, process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{server.log_tail()}") from None
        if pin:
            _pin(process.pid, SERVER_CPU)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def ceiling_server(log_dir: Path, pin: bool) -> Iterator[Server]:
    """The bare parse + VADER + 200 server."""
    port = free_port()
    command = [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
    with started(command, port, None, log_dir, pin) as server:
        yield server


def service_env(
    data_dir: Path, port: int, database_url: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment `escalations serve` gets in a benchmark."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ESCALATIONS_", "SLACK_", "MICROSOFT_"))
    }
    env.update(
        ESCALATIONS_DATA_DIR=str(data_dir),
        ESCALATIONS_WEBHOOK_SECRET=SECRET,
        ESCALATIONS_PORT=str(port),
        ESCALATIONS_RULES=str(REPO / "rules.yaml"),
        **extra,
    )
    if database_url:
        env["ESCALATIONS_DATABASE_URL"] = database_url
    return env


@contextlib.contextmanager
def service_server(
    log_dir: Path, pin: bool, database_url: str | None = None, **extra: str
) -> Iterator[Server]:
    """`escalations serve` on a fresh data directory."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="escalations-bench-"))
    command = [sys.executable, "-m", "bot.cli", "serve"]
    env = service_env(data_dir, port, database_url, **extra)
    # Another checkout of the project (to compare two versions with the same load generator).
    root = Path(os.environ.get(SERVICE_ROOT_ENV) or REPO)
    env["PYTHONPATH"] = str(root)
    try:
        with started(command, port, env, log_dir, pin, cwd=root) as server:
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def load(
    port: int,
    *,
    connections: int,
    seconds: float,
    events_per_post: int = 1,
    warmup: float = 1.0,
    pin: bool = True,
    path: str = "/webhooks/generic",
    max_requests: int | None = None,
    session_end: bool = False,
    plain: bool = False,
    conversations: int = 0,
) -> dict[str, Any]:
    """Run the load generator in its own process against a local port; its JSON result."""
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--events-per-post",
        str(events_per_post),
        "--secret",
        SECRET,
        "--path",
        path,
        "--prefix",
        f"b{uuid.uuid4().hex[:10]}",
    ]
    if pin:
        command += ["--cpu", str(LOADGEN_CPU)]
    if max_requests is not None:
        command += ["--max-requests", str(max_requests)]
    if session_end:
        command.append("--session-end")
    if plain:
        command.append("--plain")
    if conversations:
        command += ["--conversations", str(conversations)]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, check=False, timeout=seconds + warmup + 120
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the local server, dropped afterwards."""
    import psycopg

    name = f"escalations_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_available() -> bool:
    """Whether the local PostgreSQL server answers."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@dataclass
class Figure:
    """One line of the results table."""

    name: str
    value: str
    target: str = ""
    verdict: str = ""  # "ok", "MISSED" or "" (no target)
    detail: str = ""


@dataclass
class Report:
    """What one benchmark measured, printable as a table."""

    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def add(
        self, name: str, value: str, target: str = "", met: bool | None = None, detail: str = ""
    ) -> None:
        """Add a figure; `met` None means it has no target."""
        verdict = "" if met is None else ("ok" if met else "MISSED")
        self.figures.append(Figure(name, value, target, verdict, detail))

    def render(self) -> str:
        """The figures as a plain-text table."""
        return render_table(self.title, self.figures, self.notes)


def render_table(title: str, figures: Sequence[Figure], notes: Sequence[str] = ()) -> str:
    """Figures as aligned columns under a title."""
    header = Figure("figure", "measured", "target", "", "")
    rows = [header, *figures]
    widths = [
        max(len(row.name) for row in rows),
        max(len(row.value) for row in rows),
        max(len(row.target) for row in rows),
        max(len(row.verdict) for row in rows),
    ]
    lines = [title, "-" * len(title)]
    for row in rows:
        cells = (row.name, row.value, row.target, row.verdict)
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        if row.detail:
            line += "  " + row.detail
        lines.append(line.rstrip())
    lines.extend(f"  {note}" for note in notes)
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    """The median (of several runs)."""
    return float(statistics.median(values))


def new_log_dir() -> Path:
    """Where server logs of this run go (kept for a look when something fails)."""
    return Path(tempfile.mkdtemp(prefix="escalations-bench-logs-"))
