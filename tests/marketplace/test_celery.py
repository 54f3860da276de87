"""Celery: the project's app runs a real task in a real worker process through the broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from marketplace.celery import app
from marketplace.tasks import ping
from tests.support.cluster import CELERY_WORKER

REPO = Path(__file__).resolve().parents[2]


def test_celery_reads_django_settings() -> None:
    from django.conf import settings

    assert app.conf.task_always_eager == settings.CELERY_TASK_ALWAYS_EAGER
    assert app.conf.task_serializer == "json"
    assert "marketplace.ping" in app.tasks


def test_the_tasks_the_services_queue_by_name_are_registered_in_a_fresh_process() -> None:
    # given a new interpreter set up as the web server sets Django up (no test has imported a tasks module there)
    script = (
        "import django; django.setup()\n"
        "from apps.catalog.services.evaluations import RUN_EVALUATION_TASK\n"
        "from apps.publishing.pipeline import STEP_TASK\n"
        "from marketplace.celery import app\n"
        "print(sorted({RUN_EVALUATION_TASK, STEP_TASK} - set(app.tasks)))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test"}

    # when it looks up the names the catalog and publishing services queue their tasks by
    ran = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)

    # then each names a registered task, so without a broker (eager mode) it runs in-process instead of being sent
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_task_body_runs_in_process() -> None:
    result = ping.apply(args=("hello",)).get(timeout=5)
    assert result["payload"] == "hello"
    assert result["pid"] == os.getpid()


@pytest.mark.celery_worker
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_real_worker_runs_the_task_through_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a worker process consuming a queue of its own, and this process sending through the broker
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    assert app.conf.broker_url.startswith(("redis://", "amqp://")), "CELERY_BROKER_URL names a real broker"
    assert app.conf.result_backend, "a result backend (CELERY_RESULT_BACKEND or REDIS_URL) is needed to read results"
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [
            *CELERY_WORKER,
            "-Q",
            queue,
            "--loglevel=WARNING",
        ],
        cwd=REPO,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # when a task is sent through the broker
        result = ping.apply_async(args=("through-the-broker",), queue=queue).get(timeout=60)
    finally:
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()

    # then the worker process, not this one, ran it
    assert result["payload"] == "through-the-broker", output
    assert result["pid"] == worker.pid
    assert result["pid"] != os.getpid()
