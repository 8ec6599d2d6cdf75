"""Shared fixtures. Services: a test that needs one skips with a reason when it is absent, except under
CI=true, where a missing service is a failure (the README's Development section)."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str = "127.0.0.1", port: int = 0, binary: str | None = None) -> None:
    """Skip (or, under CI=true, fail) when a service or binary the test needs is absent."""
    if binary is not None and shutil.which(binary) is None:
        reason = f"{name}: binary {binary!r} not on PATH"
    elif port and not _reachable(host, port):
        reason = f"{name}: nothing listening on {host}:{port}"
    else:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def mosquitto_binary() -> str:
    require_service("mosquitto", binary="mosquitto")
    path = shutil.which("mosquitto")
    assert path is not None
    return path


@pytest.fixture
def rabbitmq() -> tuple[str, int]:
    require_service("RabbitMQ", port=5672)
    return ("127.0.0.1", 5672)
