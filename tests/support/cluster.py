"""Real servers for multi-process tests, each on a spare loopback port and in a process group of its own so a test
can stop, freeze or kill it: Redis, a private PostgreSQL cluster, the project under uvicorn, a Celery worker."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
LOG_DIR = REPO / "var" / "server-logs"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_file(name: str | int) -> IO[bytes]:
    """Server output goes to var/server-logs/<name>.log, kept for diagnosis."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return (LOG_DIR / f"{name}.log").open("wb")


def log_tail(name: str | int, chars: int = 3000) -> str:
    path = LOG_DIR / f"{name}.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def wait_for(predicate: Callable[[], T], seconds: float = 30.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy (returned); AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {seconds} s")
        time.sleep(interval)


def spawn(command: list[str], *, log: str | int, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `command` from the repository in a new session (its own process group, so `kill_group` reaches every
    child it forks), output to its log file."""
    with log_file(log) as output:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_group(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL, timeout: float = 15.0) -> None:
    """Signal the process group `process` leads and wait for its leader (SIGKILL when SIGTERM is not enough)."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


# --- Redis ---------------------------------------------------------------------------------------------------


class RedisServer:
    """A `redis-server` without persistence: killed and started again, it comes back empty."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faults-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis.from_url(self.url(db), socket_timeout=5, socket_connect_timeout=2)

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.dir), "--protected-mode", "no"]
        self.process = spawn(command, log=f"redis-{self.port}")
        wait_for(self.answers, 20, what=f"redis on {self.port} answering")

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError("redis-server exited: " + log_tail(f"redis-{self.port}"))
        try:
            client = self.client()
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False

    def kill(self) -> None:
        """SIGKILL: every key is gone; clients see refused connections."""
        kill_group(self.process)

    def freeze(self) -> None:
        """SIGSTOP: the port accepts nothing and answers nothing (clients time out); the data stays."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGCONT)
        kill_group(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- PostgreSQL ----------------------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest `/usr/lib/postgresql/*/bin` (Debian's layout), else the directory of `initdb` on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresCluster:
    """A throwaway PostgreSQL cluster (`initdb` into a temporary directory, `pg_ctl` on a spare port). PostgreSQL
    refuses to run as root: as root its binaries run as the `postgres` user, in a directory that user owns."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) are not installed")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = LOG_DIR / f"postgres-{self.port}.log"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            self.log = self.root / "postgres.log"

    def _run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        result = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )

    def start(self) -> None:
        # fsync off only matters for a crash of the machine; a killed server loses nothing it acknowledged.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash (every connection cut, recovery at the next start); `fast` a clean shutdown."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        status = subprocess.run(
            [
                *(["runuser", "-u", "postgres", "--"] if self.as_postgres else []),
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "status",
            ],
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def createdb(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect(database) as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        if self.as_postgres and self.log.exists():
            with contextlib.suppress(OSError):
                shutil.copy(self.log, LOG_DIR / f"postgres-{self.port}.log")
        shutil.rmtree(self.root, ignore_errors=True)


# --- The project -----------------------------------------------------------------------------------------------


# A Celery worker of the project in one process (solo pool), without the cluster chatter tests do not need.
CELERY_WORKER = [
    sys.executable,
    "-m",
    "celery",
    "-A",
    "marketplace",
    "worker",
    "--pool=solo",
    "--concurrency=1",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
]


def uvicorn_command(port: int, app: str = "marketplace.asgi:application") -> list[str]:
    """How production serves `app` (the project by default) on `port`."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--lifespan",
        "off",
        "--timeout-keep-alive",  # as production serves (docs/deployment.md; tests/marketplace/test_serving.py)
        "75",
    ]


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: str | int, seconds: float = 60) -> None:
    """Wait for `<url>/healthz` to answer 200 (RuntimeError with the log's tail if the process exits)."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server {url} exited: " + log_tail(log))
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server {url} did not start in {seconds} s: " + log_tail(log))
        time.sleep(0.1)


class WebServer:
    """One uvicorn process serving the project."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WebServer:
        self.process = spawn(uvicorn_command(self.port), log=self.port, env=self.env)
        return self

    def wait(self, seconds: float = 60) -> WebServer:
        assert self.process is not None
        wait_healthy(self.url, self.process, self.port, seconds)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        kill_group(self.process, sig)

    def close(self) -> None:
        kill_group(self.process, signal.SIGTERM, timeout=10)


class Project:
    """The project's processes on private servers: `manage.py` commands, Python snippets with Django set up, web
    servers and a Celery worker, all with the same environment."""

    def __init__(self, *, database_url: str, redis: RedisServer, settings: str = "settings.test", **extra: str):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url(0),
            "CELERY_BROKER_URL": redis.url(1),
            "CELERY_RESULT_BACKEND": "",
            "OTEL_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
        self.env.pop("CI", None)  # not read by servers; kept out so nothing in them behaves differently
        self.servers: list[WebServer] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self._scratch: list[Path] = []

    def manage(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def call(self, function: str, timeout: float = 120, **kwargs: Any) -> Any:
        """Run `module:function(**kwargs)` in a fresh process with Django set up on the private servers; returns
        what it returned (JSON)."""
        module, _, name = function.partition(":")
        script = (
            "import json, sys, django\n"
            "django.setup()\n"
            f"from {module} import {name} as f\n"
            "result = f(**json.loads(sys.stdin.read()))\n"
            "sys.stdout.write('\\n@@RESULT@@' + json.dumps(result, default=str))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env=self.env,
            input=json.dumps(kwargs),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0 or "@@RESULT@@" not in result.stdout:
            raise RuntimeError(f"{function} failed: {result.stdout[-3000:]}{result.stderr[-5000:]}")
        return json.loads(result.stdout.rsplit("@@RESULT@@", 1)[1])

    def start_web(self, count: int = 1, **extra_env: str) -> list[WebServer]:
        started = [WebServer({**self.env, **extra_env}).start() for _ in range(count)]
        self.servers.extend(started)
        for server in started:
            server.wait()
        return started

    def start_worker(self, *, beat: bool = False, name: str = "faults") -> subprocess.Popen[bytes]:
        """A Celery worker (solo pool) on the private broker, with the beat scheduler embedded when asked."""
        scratch = Path(tempfile.mkdtemp(prefix="faults-beat-"))
        self._scratch.append(scratch)
        schedule = scratch / "schedule"
        command = [
            *CELERY_WORKER,
            "--loglevel=WARNING",
            "-n",
            f"{name}-{os.getpid()}-{free_port()}@%h",
        ]
        if beat:
            command += ["--beat", "--schedule", str(schedule)]
        worker = spawn(command, log=f"celery-{name}-{os.getpid()}", env=self.env)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for worker in self.workers:
            kill_group(worker, signal.SIGTERM, timeout=10)
        for scratch in self._scratch:
            shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def private_cluster(
    name: str, *, settings: str = "settings.test", **extra_env: str
) -> Iterator[tuple[RedisServer, PostgresCluster, Project]]:
    """A Redis, a PostgreSQL cluster with a migrated database `name`, and a `Project` on them; everything torn down
    on exit."""
    redis = RedisServer()
    postgres: PostgresCluster | None = None
    project: Project | None = None
    try:
        redis.start()
        postgres = PostgresCluster()
        postgres.init()
        postgres.start()
        database_url = postgres.createdb(name)
        project = Project(database_url=database_url, redis=redis, settings=settings, **extra_env)
        project.manage("migrate", "--noinput")
        yield redis, postgres, project
    finally:
        if project is not None:
            project.close()
        if postgres is not None:
            postgres.close()
        redis.close()


class LocalUpstream:
    """The local OpenAI-compatible upstream (`tests.support.openai_upstream`) in a thread of the test process, on a
    fixed port so that it can go down (connections refused) and come back with the same behaviour."""

    def __init__(self) -> None:
        from tests.support import openai_upstream

        self._module = openai_upstream
        self.port = free_port()
        self.behaviour = openai_upstream.Behaviour()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._server: Any = None

    def start(self) -> LocalUpstream:
        self.behaviour.down = False
        self._server, _, _ = self._module.start(port=self.port, behaviour=self.behaviour)
        return self

    def stop(self) -> None:
        """Down: new connections are refused, requests on open ones get the connection closed."""
        self.behaviour.down = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
