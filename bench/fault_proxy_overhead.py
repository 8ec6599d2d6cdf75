"""What the fault proxy itself adds at D = 0: QoS 2 publish -> PUBCOMP, direct vs through the proxy.

`python -m bench.fault_proxy_overhead [--messages 2000] [--variant process|thread]` starts a plain-TCP
mosquitto on a free loopback port (no TLS: the proxy relays bytes, TLS would only add the same cost to both
paths), publishes QoS 2 messages one at a time with paho (one in flight, so each latency is a clean round
trip: PUBLISH, PUBREC, PUBREL, PUBCOMP = two round trips through the proxy) and prints JSON: p50/p99/max in
ms for both paths and the added p50/p99. Not a test: a measurement (the numbers depend on the machine's load).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator.faults.proxy import FaultProxy
from simulator.faults.proxy_process import ProxyProcess

__all__ = ["main", "measure"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _latencies_ms(port: int, messages: int) -> Any:
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="overhead", clean_session=True)
    client.on_publish = lambda c, u, mid, rc, props: done.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    out = []
    try:
        for i in range(messages + 50):  # the first 50 warm up
            done.clear()
            t0 = time.perf_counter()
            client.publish("fleetsim/overhead", b"x" * 153, qos=2)
            if not done.wait(5.0):
                raise RuntimeError("no PUBCOMP within 5 s")
            if i >= 50:
                out.append((time.perf_counter() - t0) * 1000.0)
    finally:
        client.disconnect()
        client.loop_stop()
    return np.array(out)


def measure(messages: int = 2000, variant: str = "process") -> dict[str, Any]:
    binary = shutil.which("mosquitto")
    if binary is None:
        raise RuntimeError("mosquitto is not on PATH")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "m.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
        broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        proxy: FaultProxy | ProxyProcess = (ProxyProcess if variant == "process" else FaultProxy)(
            "127.0.0.1", port)
        try:
            deadline = time.monotonic() + 5
            while True:  # wait for the broker's socket (polling a child we just started)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)  # sleep-ok: polling an external process's port
            proxied_port = proxy.start()
            direct = _latencies_ms(port, messages)
            proxied = _latencies_ms(proxied_port, messages)
        finally:
            proxy.stop()
            broker.terminate()
            broker.wait(5)

    def pct(a: Any) -> dict[str, float]:
        return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4),
                "max": round(float(a.max()), 4)}

    d, p = pct(direct), pct(proxied)
    return {"messages": messages, "variant": variant, "direct_ms": d, "proxied_ms": p,
            "added_p50_ms": round(p["p50"] - d["p50"], 4), "added_p99_ms": round(p["p99"] - d["p99"], 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--variant", choices=["process", "thread"], default="process")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.common import stamped

    print(json.dumps(stamped("fault_proxy_overhead", measure(args.messages, args.variant))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
