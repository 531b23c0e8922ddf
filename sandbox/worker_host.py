"""Airflow's `[core] hostname_callable` for several Celery workers on one machine.

Airflow records where a task ran (`task_instance.hostname`) from this callable; its
default, the machine's name, is the same for every worker of `make scaleout`. Each
worker there runs with HUB_WORKER_NAME set, so a task instance names its worker.
Kept apart from sandbox.scaleout: a worker imports it before each task, and it must
cost nothing.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "HUB_WORKER_NAME"


def worker_hostname() -> str:
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()
