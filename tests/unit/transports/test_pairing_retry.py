"""The Pairing API retry policy on a virtual clock: what is retried, the backoff bounds, the budget."""

from __future__ import annotations

import io
import random

import pytest
import requests

from simulator.transports.pairing_counts import RetryCounts
from simulator.transports.pairing_retry import RetryPolicy, is_retryable_status, send_with_retries


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def _response(status: int, retry_after: str | None = None) -> requests.Response:
    res = requests.Response()
    res.status_code = status
    res.raw = io.BytesIO(b"")  # an empty body, closable as urllib3's would be
    if retry_after is not None:
        res.headers["Retry-After"] = retry_after
    return res


def _run(answers: list[object], policy: RetryPolicy | None = None, spend_s: float = 0.0
         ) -> tuple[object, VirtualTime, RetryCounts, int]:
    vt, counts = VirtualTime(), RetryCounts()
    calls = 0

    def send() -> requests.Response:
        nonlocal calls
        answer = answers[min(calls, len(answers) - 1)]
        calls += 1
        vt.now += spend_s  # time the server takes to answer
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, requests.Response)
        return answer

    try:
        out: object = send_with_retries("registration", send, policy=policy, counts=counts, sleep=vt.sleep,
                                        monotonic=vt.monotonic, rng=random.Random(7))
    except Exception as exc:
        out = exc
    return out, vt, counts, calls


def test_statuses_that_are_retried() -> None:
    assert [s for s in (200, 201, 400, 401, 403, 404, 422, 429, 500, 501, 502, 503, 504) if
            is_retryable_status(s)] == [429, 500, 502, 503, 504]


def test_a_500_then_success() -> None:
    out, vt, counts, calls = _run([_response(500), _response(201)])
    assert isinstance(out, requests.Response) and out.status_code == 201 and calls == 2
    assert counts.snapshot() == {"pairing_retries.registration": 1}
    assert len(vt.waits) == 1 and 0.0 <= vt.waits[0] <= 0.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
def test_client_errors_are_not_retried(status: int) -> None:
    out, vt, counts, calls = _run([_response(status), _response(201)])
    assert isinstance(out, requests.Response) and out.status_code == status and calls == 1
    assert vt.waits == [] and counts.snapshot() == {}


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(attempts=8, budget_s=1e9)
    out, vt, counts, calls = _run([_response(503)], policy=policy)
    assert isinstance(out, requests.Response) and out.status_code == 503 and calls == 8
    bounds = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert len(vt.waits) == 7 and all(0.0 <= w <= b for w, b in zip(vt.waits, bounds, strict=True))
    assert len(set(vt.waits)) == 7  # jittered, not a fixed ladder
    assert counts.snapshot() == {"pairing_retries.registration": 7, "pairing_gave_up.registration": 1}


def test_the_budget_bounds_the_whole_call() -> None:
    # A server that takes 6 s to answer 503: the 20 s budget allows the tries that start within it.
    out, vt, counts, calls = _run([_response(503)], spend_s=6.0)
    assert isinstance(out, requests.Response) and out.status_code == 503
    # The last try started within the budget, and another would have started past it.
    assert calls < RetryPolicy().attempts and vt.now - 6.0 <= RetryPolicy().budget_s < vt.now
    assert counts.snapshot()["pairing_gave_up.registration"] == 1


def test_retry_after_is_honoured() -> None:
    out, vt, _counts, _calls = _run([_response(429, retry_after="3"), _response(201)])
    assert isinstance(out, requests.Response) and out.status_code == 201 and vt.waits == [3.0]
    # A Retry-After beyond the budget: give up now rather than wait past it.
    out, vt, counts, calls = _run([_response(503, retry_after="60"), _response(201)])
    assert isinstance(out, requests.Response) and out.status_code == 503 and calls == 1 and vt.waits == []
    assert counts.snapshot() == {"pairing_gave_up.registration": 1}


def test_connection_errors_are_retried_timeouts_and_bad_certificates_are_not() -> None:
    out, vt, counts, calls = _run([requests.exceptions.ConnectionError("reset"), _response(201)])
    assert isinstance(out, requests.Response) and calls == 2 and len(vt.waits) == 1
    out, vt, counts, calls = _run([requests.exceptions.ReadTimeout("slow"), _response(201)])
    assert isinstance(out, requests.exceptions.ReadTimeout) and calls == 1 and counts.snapshot() == {}
    bad = requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    out, vt, counts, calls = _run([bad, _response(201)])
    assert out is bad and calls == 1 and counts.snapshot() == {"pairing_gave_up.registration": 1}


def test_counts_since_a_snapshot() -> None:
    counts = RetryCounts()
    counts.add("pairing_retries.verify")
    before = counts.snapshot()
    counts.add("pairing_retries.verify")
    counts.add("pairing_gave_up.certificate")
    assert counts.since(before) == {"pairing_retries.verify": 1, "pairing_gave_up.certificate": 1}
