"""Issue 14: CPU per OTAEvent of the embedded backend's two halves -- the collector and mosquitto -- in isolation.

    python bench/collector_cost.py --events 20000 --rate 3000
    python bench/collector_cost.py --events 20000 --rate 3000 --modes debug-file,quiet,debug-pipe

No Locust, no device fleet: a real mosquitto (the backend's generated config, mutual TLS, ACL) and a real
Collector (simulator.backend.collector) in this process; a child process publishes --events OTAEvents (153 B
BSON, QoS 2) with the admin identity on --devices device topics, paced at --rate per second (absolute schedule).
Measured per mode, between the first and the last arrival at the collector: delivered/s, the CPU time of this
process (the backend's Python process: the collector's network thread does all its work, the log reader thread
takes the relay's few messages a second; the main thread only polls the arrival count), of mosquitto and of
mosquitto's log relay (simulator.backend.log_relay, its own process), each divided by the events delivered -- CPU
per event, which stays meaningful on a shared, loaded machine where wall-clock rates do not. A mode is the
broker's logging: `debug-file` (debug level to a file, the backend's behaviour before issue 14's bounded log; the
relay then reads nothing), `debug-pipe` (debug level to the log relay: the backend's behaviour), `quiet` (no
debug level; ACL denials are then not counted).

Modes alternate --rounds times in one invocation; the medians (with n) are printed and written to
bench/results/collector_cost.json. Every round runs in a fresh child process (its own interpreter, broker and
collector), so one round's heap, threads and caches never carry into the next.

    python bench/collector_cost.py --events 15000 --rate 1500 --rounds 3 --modes debug-pipe \
        --baseline-root /tmp/base_tree

--baseline-root DIR: a directory holding another tree's simulator/ (`git archive REV simulator | tar -x -C DIR`);
its rounds alternate with this tree's (this, baseline, this, baseline, ...), the child putting DIR first on
sys.path, and the medians of each side are printed with the ratio this/baseline of the collector's CPU per
event (mosquitto is the same binary on both sides: its figure is the control). --profile-dir DIR: each child
also writes a cProfile of the collector's network thread (paho's loop thread, where all the collector's work
runs) to DIR/<system>-r<round>-<mode>.prof.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
if "--child" in sys.argv and "--simulator-root" in sys.argv:  # the A/B baseline: another tree's simulator/
    sys.path.insert(0, sys.argv[sys.argv.index("--simulator-root") + 1])

from bench.common import emit, host_info, ota_payload, ota_topic, run_child, save_result, text_table

REALM = "fleetsim"
MODES = ("debug-file", "debug-pipe", "quiet")


def _publisher(spec_path: str) -> int:
    """Child: publish the spec's events on an absolute schedule, then wait for every PUBCOMP."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    spec = json.loads(Path(spec_path).read_text())
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.tls_set(ca_certs=spec["ca"], certfile=spec["cert"], keyfile=spec["key"])
    client.max_inflight_messages_set(1000)  # the schedule, not the window, paces the publisher
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", spec["port"])
    client.loop_start()
    topics = [ota_topic(REALM, d) for d in spec["devices"]]
    for dev in spec["devices"]:  # the handshake the validator expects before data
        client.publish(f"{REALM}/{dev}", b"io.edgehog.devicemanager.OTAEvent:1:0", qos=2).wait_for_publish(5)
    payload = ota_payload()
    start = time.monotonic()
    infos = []
    for k in range(spec["events"]):
        due = start + k / spec["rate"]
        if (left := due - time.monotonic()) > 0:
            time.sleep(left)  # sleep-ok: the publisher's pacing (absolute schedule), not waiting for logic
        infos.append(client.publish(topics[k % len(topics)], payload, qos=2))
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    return 0


def _one(mode: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import psutil

    from simulator.backend.broker import ADMIN_CN, BrokerConfig
    from simulator.backend.ca import LocalCA
    from simulator.backend.collector import Collector, CollectorConfig
    from simulator.backend.mosquitto import MosquittoBroker
    from simulator.ids import device_id

    ca = LocalCA(work / "state")
    ca.ensure()
    cert, key = ca.server_cert()
    config = BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, cert, key, REALM, state_dir=work / mode,
                          verbose_log=mode != "quiet")

    class FileLogMosquitto(MosquittoBroker):
        """The log straight to a file, as before the pipe (mosquitto.log grows ~400 B per event)."""

        def _config_text(self, port: int) -> str:
            path = self.log_path.with_name("mosquitto.log.file")
            return super()._config_text(port).replace("log_dest stderr", f"log_dest file {path}")

    broker = (FileLogMosquitto if mode == "debug-file" else MosquittoBroker)(config, binary=args.mosquitto)
    broker.start()
    acert, akey = ca.issue_client_cert(ADMIN_CN)
    collector = Collector(CollectorConfig("127.0.0.1", broker.port, ca.ca_cert_path, acert, akey, REALM,
                                          arrival_log=work / mode / "arrivals.csv"))
    devices = [device_id(14, i, "sequential", "cost") for i in range(args.devices)]
    spec = work / f"{mode}.json"
    spec.write_text(json.dumps({"ca": str(ca.ca_cert_path), "cert": str(acert), "key": str(akey),
                                "port": broker.port, "devices": devices, "events": args.events,
                                "rate": args.rate}))
    assert broker.pid is not None and broker.relay_pid is not None  # psutil.Process(None) is this process
    me, mosq, relay = psutil.Process(), psutil.Process(broker.pid), psutil.Process(broker.relay_pid)

    def cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    if args.profile:
        _profile_network_thread(Path(args.profile))
    try:
        collector.start()
        child = subprocess.Popen([sys.executable, __file__, "--publisher", str(spec)])
        # The clock starts at the first arrival: connect and handshake are not the steady state. Polled, not
        # Collector.wait_for: a waiter on the collector's condition is woken by every message (notify_all) and
        # takes the GIL and the collector's lock each time, work the backend does not do when nothing waits
        # (fleetsim backend: the control API reads the collector on request) but that counted as the
        # collector's CPU here.
        _poll(lambda: collector.arrival_count() > 0, 60)
        t0, c0, m0, r0, n0 = time.monotonic(), cpu(me), cpu(mosq), cpu(relay), collector.arrival_count()
        done = _poll(lambda: collector.arrival_count() >= args.events, args.events / 100 + 60)
        t1, c1, m1, r1, n1 = time.monotonic(), cpu(me), cpu(mosq), cpu(relay), collector.arrival_count()
        child.wait(60)
        refusals = broker.refusals()
        log_bytes = sum(f.stat().st_size for f in (work / mode / "mosquitto").glob("mosquitto.log*"))
    finally:
        collector.stop()
        broker.stop()
    n = max(1, n1 - n0)
    return {"mode": mode, "complete": done, "delivered": n1, "delivered_eps": round(n / (t1 - t0), 1),
            "collector_us_per_event": round((c1 - c0) / n * 1e6, 1),
            "mosquitto_us_per_event": round((m1 - m0) / n * 1e6, 1),
            "relay_us_per_event": round((r1 - r0) / n * 1e6, 1),
            "handler_us_mean": round(collector.stats()["handler_us_mean"], 1),
            "log_bytes_per_event": round(log_bytes / max(1, n1), 1), "refusals": refusals}


def _poll(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """`predicate()` became true within `timeout_s` (checked every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)  # sleep-ok: the bench's observer polls so that it costs the collector nothing
    return True


def _profile_network_thread(out: Path) -> None:
    """cProfile the paho loop thread (every paho Client's `_thread_main`): a profile is per thread, and the
    collector's work all runs there. Written to `out` when the thread ends (Collector.stop joins it)."""
    import cProfile

    import paho.mqtt.client as mqtt

    original = mqtt.Client._thread_main

    def profiled(self: Any) -> None:
        prof = cProfile.Profile()
        prof.enable()
        try:
            original(self)
        finally:
            prof.disable()
            prof.dump_stats(str(out))

    mqtt.Client._thread_main = profiled  # type: ignore[method-assign]


def _child(args: argparse.Namespace) -> int:
    """One round of one mode in this fresh process; its row on the RESULT line."""
    import simulator

    row = _one(args.child, args, Path(args.work))
    row["simulator"] = str(Path(simulator.__file__).resolve().parent)  # which tree ran: proof of the A/B
    emit(row)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--publisher", help=argparse.SUPPRESS)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rate", type=float, default=3000.0, help="offered OTAEvents/s")
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--baseline-root", default="",
                    help="a directory holding another tree's simulator/: its rounds alternate with this tree's")
    ap.add_argument("--profile-dir", default="", help="write a cProfile of each round's network thread here")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # a mode: run one round in this process
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--simulator-root", default="", help=argparse.SUPPRESS)
    ap.add_argument("--profile", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.publisher:
        return _publisher(args.publisher)
    if args.child:
        return _child(args)
    if args.baseline_root and not (Path(args.baseline_root) / "simulator" / "__init__.py").is_file():
        ap.error(f"--baseline-root {args.baseline_root}: no simulator/ package there")
    modes = [m for m in args.modes.split(",") if m]
    systems = ["this", "baseline"] if args.baseline_root else ["this"]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="collector-cost-") as tmp:
        for r in range(args.rounds):
            for mode in modes:
                for system in systems:  # this, baseline, this, baseline...: drifts of the machine hit both
                    argv_child = [__file__, "--child", mode, "--work", f"{tmp}/{system}-r{r}",
                                  "--events", str(args.events), "--rate", str(args.rate),
                                  "--devices", str(args.devices), "--mosquitto", args.mosquitto]
                    if system == "baseline":
                        argv_child += ["--simulator-root", str(Path(args.baseline_root).resolve())]
                    if args.profile_dir:
                        Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
                        prof = Path(args.profile_dir).resolve() / f"{system}-r{r}-{mode}.prof"
                        argv_child += ["--profile", str(prof)]
                    row = {"system": system, "round": r, **run_child(argv_child, args.events / 100 + 180)}
                    print(json.dumps(row), flush=True)
                    runs.append(row)
    keys = ("delivered_eps", "collector_us_per_event", "mosquitto_us_per_event", "relay_us_per_event",
            "handler_us_mean",
            "log_bytes_per_event")
    medians = [{"system": s, "mode": m, "n": len(rs),
                **{k: round(statistics.median(r[k] for r in rs), 1) for k in keys},
                "collector_us_rounds": [r["collector_us_per_event"] for r in rs]}
               for m in modes for s in systems
               if (rs := [r for r in runs if r.get("system") == s and r.get("mode") == m and r.get("complete")])]
    doc: dict[str, Any] = {
        "bench": "collector_cost", "host": host_info(),
        "cmd": "python bench/collector_cost.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "runs": runs, "medians": medians}
    if args.baseline_root:
        doc["baseline_root"] = str(args.baseline_root)
        doc["collector_ratio"] = {  # this tree's collector CPU per event over the baseline's, per mode
            m: round(this["collector_us_per_event"] / base["collector_us_per_event"], 3)
            for m in modes
            for this in medians if this["system"] == "this" and this["mode"] == m
            for base in medians if base["system"] == "baseline" and base["mode"] == m
            if base["collector_us_per_event"]}
    print(text_table(medians, ["system", "mode", "n", *keys]))
    if "collector_ratio" in doc:
        print(f"collector us/event, this / baseline: {doc['collector_ratio']}")
    print(f"saved {save_result('collector_cost', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
