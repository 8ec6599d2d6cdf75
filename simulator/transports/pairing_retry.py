"""Retries of Pairing API calls (register, certificate, pairing info, verify), as a real device agent retries.

What is retried: HTTP 429 and 5xx except 501 (a server that says "not implemented" will keep saying it), and
connection errors (refused, reset, a stale keep-alive connection). Never a 4xx (our request is wrong or the
device is not allowed: retrying cannot help), a certificate verification failure, or a timeout (one call may
already take DEFAULT_TIMEOUT_S = 30 s, more than the whole budget).

How (RetryPolicy): at most 5 tries per call; before retry n (1-based) a "full jitter" wait drawn uniformly
from [0, min(8 s, 0.5 s * 2^(n-1))] (AWS Architecture Blog, "Exponential Backoff and Jitter", 2015: jitter
spreads a fleet that failed together, so 1,000 devices hit by one 503 do not come back in one burst), or the
server's `Retry-After` seconds when it sends one; and never past 20 s from the call's start. Why 20 s: a
transient 5xx (a pairing pod restarting, a load balancer failing over) clears within seconds, and a device's
whole onboarding must fit in the run's wait for devices to come online (30 s at least,
simulator.generator.fleet ONLINE_WAIT_MIN_S). Mean wait over 4 retries is ~3.75 s, at most 7.5 s.

Counted per phase in simulator.transports.pairing_counts.RETRY_COUNTS (process-wide: the SDK's own calls go
through the same counter), which the fleet reports as `pairing_retries.<phase>` and `pairing_gave_up.<phase>`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import requests

from simulator.transports.pairing_counts import RETRY_COUNTS, RetryCounts

__all__ = ["Answer", "RetryPolicy", "is_retryable_status", "send_with_retries"]


class Answer(Protocol):
    """What a retried call returns: requests.Response (the SDK's calls) or pairing_http.HttpResponse."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...  # case-insensitive lookups in both

    def close(self) -> None: ...


A = TypeVar("A", bound=Answer)
# Raised by a call that never got an answer: requests' errors (the SDK's calls) or the builtin ones that
# pairing_http raises (HttpConnectionError is a ConnectionError, HttpTimeout a TimeoutError).
_TIMEOUTS = (requests.exceptions.Timeout, TimeoutError)
_CONNECTION_ERRORS = (requests.exceptions.ConnectionError, ConnectionError)


@dataclass(frozen=True)
class RetryPolicy:
    """Seconds throughout. See the module docstring for the numbers and why."""

    attempts: int = 5  # tries per call, the first one included
    base_s: float = 0.5  # the first retry waits up to this
    cap_s: float = 8.0  # no single wait longer than this
    budget_s: float = 20.0  # no retry starts (or waits) past this many seconds after the call's first try

    def delay_s(self, retry: int, rng: random.Random) -> float:
        """The wait before retry `retry` (1-based): full jitter over the exponential bound."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** (retry - 1)))


def is_retryable_status(status: int) -> bool:
    return status == 429 or (500 <= status <= 599 and status != 501)


def _is_verify_error(exc: Exception) -> bool:
    """A certificate problem: retrying cannot help."""
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc)


def _retry_after_s(res: Answer) -> float | None:
    """`Retry-After: <seconds>` (the HTTP-date form is not used by Astarte's services; ignored)."""
    value = res.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def send_with_retries(
    phase: str,
    send: Callable[[], A],
    *,
    policy: RetryPolicy | None = None,
    counts: RetryCounts = RETRY_COUNTS,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    rng: Any = None,
) -> A:
    """`send()` until it answers something not retryable or the policy is spent; the last answer or error.

    `sleep` is time.sleep (a greenlet switch once gevent has patched it). Raises what `send` raised when
    connection errors persist; returns the last (retryable-status) response when statuses do.
    """
    policy = policy or RetryPolicy()
    rng = rng or random
    start = monotonic()
    retry = 0
    while True:
        try:
            res = send()
        except _TIMEOUTS:
            raise
        except _CONNECTION_ERRORS as exc:  # TLS errors included
            wait = policy.delay_s(retry + 1, rng)
            if _is_verify_error(exc) or not _may_retry(policy, retry, start, monotonic, wait):
                counts.add(f"pairing_gave_up.{phase}")
                raise
        else:
            if not is_retryable_status(res.status_code):
                return res
            hinted = _retry_after_s(res)
            wait = hinted if hinted is not None else policy.delay_s(retry + 1, rng)
            if not _may_retry(policy, retry, start, monotonic, wait):
                counts.add(f"pairing_gave_up.{phase}")
                return res
            res.close()  # give the connection back to the pool before waiting
        retry += 1
        counts.add(f"pairing_retries.{phase}")
        if wait > 0:
            sleep(wait)


def _may_retry(policy: RetryPolicy, retry: int, start: float, monotonic: Callable[[], float],
               wait: float) -> bool:
    return retry + 1 < policy.attempts and monotonic() - start + wait <= policy.budget_s
