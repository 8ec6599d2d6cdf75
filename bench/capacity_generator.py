"""One generator process of bench/backend_capacity.py (issue 3): `python bench/capacity_generator.py SPEC`.

SPEC is a JSON file from the parent: backend info, this process's device ids, the step schedule (offered
events/s and seconds per step) and this process's share of each rate. gevent is patched first, as Locust does
on import. The devices connect through one simulator.transports.lean_fleet.LeanFleet with cached
credentials; then `READY {...}` on stdout, and the parent's `GO <wall time>` on stdin starts the schedule
at the same instant in every generator. Each step publishes the real OTAEvent at QoS 2 on an absolute grid
(docs/design.md principle 3), the devices in turn; an event already DROP_AFTER_S late is dropped and counted
(k6 dropped_iterations) so that a saturated generator shows instead of smearing its backlog into the next
step. Acks (PUBCOMP) are counted in the step whose time they fall in. After the last step it waits up to
DRAIN_S for outstanding acks, then prints `RESULT {...}` (bench.common.emit) and exits.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import bisect  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.socket  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.capacity_helpers import DRAIN_S, DROP_AFTER_S, GO, READY  # noqa: E402
from bench.common import OTA_VALUE, cpu_seconds, emit, raise_fd_limit  # noqa: E402

__all__ = ["run"]


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Connect this generator's devices, report READY, wait for GO, play the steps, drain, emit RESULT."""
    from simulator.events import OTA_EVENT_INTERFACE, OTA_EVENT_PATH
    from simulator.interfaces.loader import load_interfaces
    from simulator.transports.base import Endpoint, PublishError
    from simulator.transports.lean_fleet import LeanFleet

    raise_fd_limit(len(spec["ids"]) + 200)
    info = spec["info"]
    endpoint = Endpoint(realm=info["realm"], pairing_url=info["pairing_url"], agent_jwt=info["agent_jwt"],
                        ca_file=info["ca_file"], credentials_dir=spec["credentials_dir"])
    fleet = LeanFleet(endpoint, load_interfaces(), revalidate=False, timeout_s=60.0)
    failures: dict[str, int] = {}

    def connect(dev_id: str) -> None:
        try:
            fleet.transport(dev_id).connect()
        except Exception as exc:  # counted: one failing device must not end the benchmark
            key = f"{type(exc).__name__}: {str(exc)[:100]}"
            failures[key] = failures.get(key, 0) + 1

    t0 = time.monotonic()
    gevent.pool.Pool(spec["concurrency"]).map(connect, spec["ids"])
    devs = [fleet.transport(d) for d in spec["ids"] if fleet.transport(d).connected]
    connect_s = time.monotonic() - t0
    if not devs:
        fleet.stop()
        raise SystemExit(f"no device connected: {failures}")  # the parent reports the stderr tail
    gc.collect()
    gc.freeze()  # docs/protocol.md section 7: full GCs over the connect garbage would set the send-lag p99
    print(READY + json.dumps({"connected": len(devs), "connect_s": round(connect_s, 2)}), flush=True)
    gevent.socket.wait_read(sys.stdin.fileno(), timeout=600)  # the parent's GO line (cooperative wait)
    line = sys.stdin.readline()
    start_wall = float(line[len(GO):])
    start = time.monotonic() + (start_wall - time.time())

    rates, seconds, share = spec["rates"], spec["seconds"], spec["share"]
    starts = [start + sum(seconds[:i]) for i in range(len(rates))]
    bounds = [*starts, start + sum(seconds)]  # an ack after the last step's end belongs to no step
    n_steps = len(rates)
    acked = [0] * n_steps
    ack_hist = [HdrHistogram(1, 60_000_000, 3) for _ in range(n_steps)]  # microseconds
    totals = {"sent": 0, "acked": 0, "ack_errors": 0}
    done = gevent.event.Event()
    values = [{**OTA_VALUE, "statusProgress": p} for p in range(101)]

    def on_ack_for(sent_at: float) -> Any:
        def cb(at: float, err: str | None) -> None:
            if err:
                totals["ack_errors"] += 1
            else:
                totals["acked"] += 1
                i = bisect.bisect_right(bounds, at) - 1
                if 0 <= i < n_steps:
                    acked[i] += 1
                    ack_hist[i].record_value(max(1, int((at - sent_at) * 1e6)))
            if totals["acked"] + totals["ack_errors"] >= totals["sent"] and finished[0]:
                done.set()

        return cb

    finished = [False]
    steps: list[dict[str, Any]] = []
    cursor = 0
    for s, (rate, length) in enumerate(zip(rates, seconds, strict=True)):
        my_rate = rate * share
        period = 1.0 / my_rate
        count = int(my_rate * length)
        lag = HdrHistogram(1, 600_000_000, 3)
        sent = dropped = 0
        errors: dict[str, int] = {}
        gevent.sleep(max(0.0, starts[s] - time.monotonic()))  # wait for the step's start (schedule)
        cpu0, since_yield = cpu_seconds(), 0
        for k in range(count):
            due = starts[s] + k * period
            now = time.monotonic()
            if due > now:
                gevent.sleep(due - now)  # the pacer itself: absolute grid
                now, since_yield = time.monotonic(), 0
            elif since_yield >= 32:  # behind: still let the I/O greenlet read acks
                gevent.sleep(0)
                now, since_yield = time.monotonic(), 0
            since_yield += 1
            if now - due > DROP_AFTER_S:
                dropped += 1
                continue
            lag.record_value(max(1, int((now - due) * 1e6)))
            dev = devs[cursor % len(devs)]
            cursor += 1
            try:
                dev.publish(OTA_EVENT_INTERFACE, OTA_EVENT_PATH, values[k % 101], int(time.time() * 1000),
                            on_ack_for(now))
                sent += 1
                totals["sent"] += 1
            except PublishError as exc:
                errors[exc.reason] = errors.get(exc.reason, 0) + 1
        end = starts[s] + length
        gevent.sleep(max(0.0, end - time.monotonic()))
        steps.append({"offered_share": round(my_rate, 1), "planned": count, "sent": sent, "dropped": dropped,
                      "publish_errors": errors, "cpu_s": round(cpu_seconds() - cpu0, 3),
                      "lag_ms_p50": lag.get_value_at_percentile(50) / 1000,
                      "lag_ms_p99": lag.get_value_at_percentile(99) / 1000,
                      "lag_ms_max": lag.get_max_value() / 1000})
    finished[0] = True
    if totals["acked"] + totals["ack_errors"] < totals["sent"]:
        done.wait(DRAIN_S)
    for i, step in enumerate(steps):
        step["acked_in_step"] = acked[i]
        step["ack_ms_p50"] = ack_hist[i].get_value_at_percentile(50) / 1000
        step["ack_ms_p99"] = ack_hist[i].get_value_at_percentile(99) / 1000
    out = {"devices": len(spec["ids"]), "connected": len(devs), "connect_s": round(connect_s, 2),
           "connect_failures": failures, "steps": steps, "totals": totals, "fleet": fleet.stats()}
    fleet.stop()
    emit(out)
    return out


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
