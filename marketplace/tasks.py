"""Project-level Celery tasks."""

import os
import socket

from celery import shared_task


@shared_task(name="marketplace.ping")
def ping(payload: str = "ping") -> dict[str, object]:
    """Echo `payload` with the identity of the process that ran the task (used by health tests and operators)."""
    return {"payload": payload, "hostname": socket.gethostname(), "pid": os.getpid()}
