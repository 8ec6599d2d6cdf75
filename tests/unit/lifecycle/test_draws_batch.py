"""The planner's batched draws are the draws it took one at a time (issue 16): `draw_operation`'s one call of
19 doubles gives the operation the one-at-a-time code of 7ee1af5 drew and leaves the stream where that code left
it, and `stream_bytes16` is `Generator.bytes(16)` whatever half-output the bit generator holds buffered."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.ids import request_uuid, stream_bytes16
from simulator.lifecycle.draws import OUTCOMES, OperationDraw, _weighted, draw_operation, failed_attempts, sample
from simulator.lifecycle.states import MAX_DOWNLOAD_ATTEMPTS
from simulator.plan import device_rng
from simulator.scenario.model import NO_SHUTDOWN_DELAY, Distribution, RandomLifecycle


def uuid_7ee1af5(rng: np.random.Generator) -> str:
    raw = bytearray(rng.bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def draw_7ee1af5(spec: RandomLifecycle, rng: np.random.Generator) -> OperationDraw:
    """draw_operation as 7ee1af5 wrote it: each value its own call."""
    outcome = _weighted(spec.outcomes, float(rng.random()))
    ack = sample(spec.acknowledge_delay, rng)
    download = sample(spec.download_duration, rng)
    deploy = sample(spec.deploy_duration, rng)
    reboot = sample(spec.reboot_duration, rng)
    tries = [(float(rng.random()), float(rng.random())) for _ in range(MAX_DOWNLOAD_ATTEMPTS)]
    fail_fraction = float(rng.random())
    cancel_fraction = float(rng.random())
    double = float(rng.random()) < spec.double_update_probability
    second_fraction = float(rng.random())
    second = uuid_7ee1af5(rng)
    shutdown = sample(spec.shutdown_delay, rng) if spec.shutdown_delay != NO_SHUTDOWN_DELAY else 0.0
    failed, outcome = failed_attempts(spec, outcome, tries)  # the same rule; what differs is the draw order
    return OperationDraw(outcome=outcome, streaming=spec.streaming, progress_step=spec.progress_step,
                         ack_delay=ack, download=download, deploy=deploy, reboot=reboot,
                         failed_attempts=tuple(failed), fail_fraction=fail_fraction, cancel_fraction=cancel_fraction,
                         second_uuid=second if double else None, second_fraction=second_fraction, shutdown=shutdown)


EVERY_KIND = RandomLifecycle(
    outcomes=tuple((o, 1 / len(OUTCOMES)) for o in OUTCOMES),
    download_duration=Distribution("lognormal", median=20.0, sigma=0.5),
    deploy_duration=Distribution("uniform", low=5.0, high=20.0),
    reboot_duration=Distribution("exponential", mean=10.0),
    acknowledge_delay=Distribution("uniform", low=0.0, high=2.0),
    download_error_probability=0.4, error_codes=(("NetworkError", 0.5), ("IOError", 0.5)),
    double_update_probability=0.5, shutdown_delay=Distribution("uniform", low=0.0, high=70.0))
SPECS = {"defaults": RandomLifecycle(), "every-kind": EVERY_KIND,
         "streaming": RandomLifecycle(outcomes=EVERY_KIND.outcomes, streaming=True, double_update_probability=0.5)}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_batched_draws_are_the_one_at_a_time_draws(name: str) -> None:
    spec = SPECS[name]
    for device in range(40):
        batched, reference = device_rng(5, device), device_rng(5, device)
        for _ in range(3):  # consecutive operations of one device, as the planner draws them
            assert request_uuid(batched) == uuid_7ee1af5(reference)
            assert draw_operation(spec, batched) == draw_7ee1af5(spec, reference)
        assert batched.random() == reference.random()  # the streams are in the same place


@pytest.mark.parametrize("buffered", [0, 1, 2, 3])
def test_stream_bytes16_is_generator_bytes(buffered: int) -> None:
    for seed in range(50):
        fast, reference = device_rng(seed, 1), device_rng(seed, 1)
        if buffered:  # an odd count of uint32 leaves half of a 64-bit output buffered in PCG64
            fast.integers(0, 2**32, size=buffered, dtype=np.uint32)
            reference.integers(0, 2**32, size=buffered, dtype=np.uint32)
        fast.random(3)
        reference.random(3)
        assert stream_bytes16(fast) == reference.bytes(16)
        assert fast.integers(0, 2**32, dtype=np.uint32) == reference.integers(0, 2**32, dtype=np.uint32)
        assert fast.random() == reference.random()
