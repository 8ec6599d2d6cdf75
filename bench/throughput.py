"""Throughput: the fleetsim engine, fleetsim `lean` and `sdk` transports, Locust's MqttUser and bare paho.

    python bench/throughput.py --quick                       # 100 and 1,000 devices, 3 rounds of 2 s
    python bench/throughput.py --sizes 100,1000 --rounds 5 --seconds 10

What is measured: the real OTAEvent (the 153-byte BSON document astarte-device-sdk produces for it) at
QoS 2 into the embedded backend's mosquitto (mutual TLS, one certificate per device, per-device topic ACL).
Closed loop, one QoS 2 publish in flight per device: a device publishes again as soon as its PUBCOMP arrives,
so the offered load is always the maximum the system can carry. "events/s" = PUBCOMPs received per second in
a window after a warm-up (default 1 s); CPU = this generator process's user+system seconds in that window;
"events per CPU-second" = events in the window / CPU seconds in it (less sensitive than events/s to the
other processes of a shared machine).

The five systems, each in its own child process (one at a time; the broker in this process's mosquitto):
- engine: what a user's run does per OTAEvent (bench/throughput_engine.py): VirtualDevice served by one
  scheduler greenlet with the Pacer, as the fleet's DeviceScheduler serves it, the lean transport from the
  run's transport factory, the MetricsRecorder and one Locust request event per OTAEvent through the Locust
  driver's stats bridge, a Locust local runner logging them;
- lean: the transport alone (LeanFleet: one I/O greenlet for all paho clients), with validation and BSON
  encoding on every publish, no device, recorder or Locust;
- sdk: simulator.transports.sdk (one unmodified astarte-device-sdk DeviceMqtt per device, gevent-patched like
  under Locust; past ~300 devices it is expected to collapse: a paho loop per device, README "Transports");
- mqttuser: locust.contrib.mqtt.MqttUser in a Locust Environment (local runner), one user per device, its
  best configuration: `use_loop_selectors=True` past 300 devices (beyond ~340 connections paho's select()
  fails otherwise), False below,
  task = publish + `wait_for_publish()`, `wait_time = constant(0)`; PUBCOMPs counted from its request events;
- paho: bare paho Clients, no gevent, ONE thread running an epoll selector over every socket and paho's
  external-loop API (loop_read / loop_write / loop_misc): the honest best bare-paho way for 1,000 clients
  (loop_start() would mean 1,000 threads and select() fails for fds >= 1024).

Runs alternate (A B C D E A B C D E ...) so machine drift hits every system alike; medians of the rounds
(`n` = how many rounds gave a sample); ratios fleetsim/MqttUser and fleetsim/paho, of events/s and of events
per CPU-second. Goals at 1,000 devices, events per CPU-second (issue 16): engine >= 2.0x MqttUser,
engine >= 0.7x bare paho.
Prints a table and JSON; writes bench/results/throughput.json.
"""

from __future__ import annotations

import sys

_CHILD = sys.argv[sys.argv.index("--child") + 1] if "--child" in sys.argv else None
if _CHILD in ("engine", "lean", "sdk"):  # before anything imports threading/socket, as Locust does on import
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    OTA_VALUE,
    alternate,
    credentials_dir,
    emit,
    host_info,
    median,
    provision,
    raise_fd_limit,
    ratio,
    run_child,
    save_result,
    start_backend,
    text_table,
)
from bench.throughput_baselines import PUBLISHING_MARK, _ids, _window, child_mqttuser, child_paho  # noqa: E402
from bench.throughput_engine import child_engine  # noqa: E402

__all__ = ["PUBLISHING_MARK", "main", "summarize"]

SYSTEMS = ("engine", "lean", "sdk", "mqttuser", "paho")
OTA_EVENT = "io.edgehog.devicemanager.OTAEvent"
SDK_SEED_OFFSET = 1000
# At the largest size, ratios of events per CPU-second (issue 16: the engine's ratio is the one users meet).
GOALS = {"engine/mqttuser": ">= 2.0", "engine/paho": ">= 0.7"}
FLEETSIM_SYSTEMS = ("engine", "lean", "sdk")
BASELINES = ("mqttuser", "paho")


# ---- children ------------------------------------------------------------------------------------------


def _closed_loop_gevent(
    n: int, publish: Callable[[int, Callable[[float, str | None], None]], None], args: argparse.Namespace
) -> dict[str, Any]:
    """One publish in flight per device; a pump greenlet republishes for every device whose ack arrived."""
    from collections import deque

    import gevent
    import gevent.event

    ready: deque[int] = deque(range(n))
    wake = gevent.event.Event()
    state = {"acked": 0, "ack_errors": 0, "publish_errors": 0}

    def make_cb(i: int) -> Callable[[float, str | None], None]:
        def cb(at: float, error: str | None) -> None:
            state["ack_errors" if error else "acked"] += 1
            ready.append(i)
            wake.set()

        return cb

    callbacks = [make_cb(i) for i in range(n)]
    running = True

    def pump() -> None:
        while running:
            if not ready:
                wake.clear()
                wake.wait(0.1)
                continue
            for _ in range(len(ready)):
                i = ready.popleft()
                try:
                    publish(i, callbacks[i])
                except Exception:
                    state["publish_errors"] += 1
                    gevent.spawn_later(0.01, ready.append, i)
            gevent.sleep(0)  # let the I/O greenlet read acks between batches

    g = gevent.spawn(pump)
    print(PUBLISHING_MARK, file=sys.stderr, flush=True)  # profile_hot_path.py attaches py-spy now
    out = _window(lambda: state["acked"], args.warmup, args.seconds, gevent.sleep)
    running = False
    g.kill()
    return {**out, **state}


def _endpoint(info: dict[str, Any]) -> Any:
    from simulator.transports.base import Endpoint

    return Endpoint(
        realm=info["realm"],
        pairing_url=info["pairing_url"],
        agent_jwt=info["agent_jwt"],
        ca_file=info["ca_file"],
        credentials_dir=info["credentials_dir"],
    )


def _connect_all(connect: Callable[[str], object], ids: list[str], concurrency: int) -> float:
    import gevent.pool

    t0 = time.monotonic()
    gevent.pool.Pool(concurrency).map(connect, ids)
    return round(time.monotonic() - t0, 2)


def child_lean(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from simulator.interfaces.loader import load_interfaces
    from simulator.transports.lean_fleet import LeanFleet

    ids = _ids(args)
    fleet = LeanFleet(_endpoint(info), load_interfaces(), revalidate=False, timeout_s=60.0)
    try:
        connect_s = _connect_all(lambda d: fleet.transport(d).connect(), ids, 50)
        devs = [fleet.transport(d) for d in ids]

        def publish(i: int, cb: Callable[[float, str | None], None]) -> None:
            devs[i].publish(OTA_EVENT, "/event", OTA_VALUE, int(time.time() * 1000), cb)

        return {"connect_s": connect_s, **_closed_loop_gevent(len(devs), publish, args)}
    finally:
        fleet.stop()


def child_sdk(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import warnings

    from simulator.interfaces.loader import INTERFACES_DIR
    from simulator.transports.credentials import CredentialsCache
    from simulator.transports.sdk import SdkFleet

    warnings.simplefilter("ignore", DeprecationWarning)  # paho's v1 callback API, used by the SDK
    # Other ids than the provisioned ones: the SDK registers its devices itself (first run only). Their
    # secrets go to the target's one cache, as in a run (simulator.generator.fleet.make_transport_factory):
    # the lean transport adopts a former sdk-only cache into it, so a separate sdk cache loses them.
    ids = _ids(args, SDK_SEED_OFFSET)
    cache = CredentialsCache.for_target(info["credentials_dir"], info["realm"], info["pairing_url"])
    fleet = SdkFleet(_endpoint(info), INTERFACES_DIR, cache, connect_timeout=120.0)
    try:
        devs = [fleet.transport(d) for d in ids]
        by_id = dict(zip(ids, devs, strict=True))
        connect_s = _connect_all(lambda d: by_id[d].connect(), ids, 16)

        def publish(i: int, cb: Callable[[float, str | None], None]) -> None:
            devs[i].publish(OTA_EVENT, "/event", OTA_VALUE, int(time.time() * 1000), cb)

        return {"connect_s": connect_s, **_closed_loop_gevent(len(devs), publish, args)}
    finally:
        fleet.stop()


CHILDREN = {
    "engine": child_engine,
    "lean": child_lean,
    "sdk": child_sdk,
    "mqttuser": child_mqttuser,
    "paho": child_paho,
}


# ---- parent --------------------------------------------------------------------------------------------


def summarize(runs: list[dict[str, Any]], sizes: list[int], systems: list[str]) -> dict[str, Any]:
    """Medians per (size, system), each with n (the rounds that gave a sample), and the ratios of every
    fleetsim system to MqttUser and to bare paho: of events/s (`ratios`) and of events per CPU-second
    (`cpu_ratios`, what the goals judge)."""
    out: dict[str, Any] = {}
    for size in sizes:
        per: dict[str, Any] = {}
        for system in systems:
            mine = [r for r in runs if r["devices"] == size and r["system"] == system]
            samples = [r.get("events_per_s") for r in mine]
            cpu = [r.get("cpu_us_per_event") for r in mine]
            per_cpu_s = [None if not c else round(1e6 / c, 1) for c in cpu]
            per[system] = {
                "runs": len(mine),  # 0: not attempted at this size (sdk above --sdk-max-devices)
                "events_per_s_median": median(samples),
                "n": sum(1 for s in samples if s is not None),
                "samples": samples,
                "cpu_us_per_event_median": median(cpu),
                "events_per_cpu_s_median": median(per_cpu_s),
                "n_cpu": sum(1 for s in per_cpu_s if s is not None),
                "failed_runs": sum(1 for s in samples if s is None),
            }
        pairs = [(a, b) for a in FLEETSIM_SYSTEMS for b in BASELINES if a in systems and b in systems]
        ratios = {f"{a}/{b}": ratio(per[a]["events_per_s_median"], per[b]["events_per_s_median"]) for a, b in pairs}
        cpu_ratios = {f"{a}/{b}": ratio(per[a]["events_per_cpu_s_median"], per[b]["events_per_cpu_s_median"])
                      for a, b in pairs}
        # n of a ratio = the smaller n of its two medians (each median is of that many rounds or more)
        ratio_n = {f"{a}/{b}": min(per[a]["n_cpu"], per[b]["n_cpu"]) for a, b in pairs}
        out[str(size)] = {"systems": per, "ratios": ratios, "cpu_ratios": cpu_ratios, "ratio_n": ratio_n}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000", help="device counts, comma separated")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median over them)")
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement window per run (s)")
    ap.add_argument("--warmup", type=float, default=1.0, help="publishing before the window (s)")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 2 s (about 5-8 minutes)")
    ap.add_argument(
        "--sdk-max-devices", type=int, default=1000, help="skip the sdk system above this size (--quick: 300)"
    )
    ap.add_argument("--collector", action="store_true", help="keep the embedded collector subscribed")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--devices", type=int, default=100, help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    ap.add_argument("--info", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        raise_fd_limit(args.devices * 3 + 200)
        emit(CHILDREN[args.child](json.loads(args.info), args))
        return 0
    if args.quick:
        args.rounds, args.seconds, args.sdk_max_devices = 3, 2.0, 300
    sizes = [int(s) for s in args.sizes.split(",")]
    systems = [s for s in args.systems.split(",") if s]
    backend = start_backend("bench", collector=args.collector)
    runs: list[dict[str, Any]] = []
    try:
        info = backend.info
        from simulator.ids import device_id

        t0 = time.monotonic()
        provision(info, [device_id(args.seed, i) for i in range(max(sizes))])
        provision_s = round(time.monotonic() - t0, 1)
        child_info = json.dumps(
            {
                "realm": info.realm,
                "pairing_url": info.pairing_url,
                "agent_jwt": info.agent_jwt,
                "ca_file": info.ca_file,
                "host": info.broker_host,
                "port": info.broker_port,
                "credentials_dir": str(credentials_dir(info.realm)),
            }
        )
        for size in sizes:
            for rnd, system in alternate(systems, args.rounds):
                if system == "sdk" and size > args.sdk_max_devices:
                    continue  # minutes of connecting to measure a known collapse (a paho thread per device)
                res = run_child(
                    [
                        __file__,
                        "--child",
                        system,
                        "--devices",
                        str(size),
                        "--seconds",
                        str(args.seconds),
                        "--warmup",
                        str(args.warmup),
                        "--seed",
                        str(args.seed),
                        "--info",
                        child_info,
                    ],
                    timeout_s=240 + size * 0.2,
                )
                res.update(system=system, devices=size, round=rnd)
                runs.append(res)
                print(
                    f"throughput: {size:>5} devices  {system:<8} round {rnd}: "
                    f"{res.get('events_per_s', res.get('error'))} events/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        backend.stop()
    summary = summarize(runs, sizes, systems)
    top = str(max(sizes))
    goals = {
        name: {
            "goal": goal,
            "metric": "events per CPU-second ratio",
            "value": summary[top]["cpu_ratios"].get(name),
            "n": summary[top]["ratio_n"].get(name, 0),
            "devices": int(top),
        }
        for name, goal in GOALS.items()
    }
    doc = {
        "bench": "throughput",
        "definition": "PUBCOMPs per second (and per CPU-second of the generator), closed loop, 1 QoS 2 publish "
        "in flight per device, 153-byte OTAEvent, mosquitto with mTLS",
        "host": host_info(),
        "provision_s": provision_s,
        "params": {k: getattr(args, k) for k in ("rounds", "seconds", "warmup", "collector", "seed")},
        "summary": summary,
        "goals": goals,
        "runs": runs,
    }
    rows = [
        {
            "devices": int(size),
            "system": system,
            "events/s (median)": per["events_per_s_median"],
            "events/CPU-s (median)": per["events_per_cpu_s_median"],
            "cpu us/event": per["cpu_us_per_event_median"],
            "n": per["n"],
            "failed runs": per["failed_runs"],
        }
        for size, block in summary.items()
        for system, per in block["systems"].items()
    ]
    rows += [
        {
            "devices": int(size),
            "system": name,
            "events/s (median)": value,
            "events/CPU-s (median)": block["cpu_ratios"][name],
            "n": block["ratio_n"][name],
        }
        for size, block in summary.items()
        for name, value in block["ratios"].items()
    ]
    columns = ["devices", "system", "events/s (median)", "events/CPU-s (median)", "cpu us/event", "n", "failed runs"]
    print(
        text_table(rows, columns),
        file=sys.stderr,
    )
    save_result("throughput", doc)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
