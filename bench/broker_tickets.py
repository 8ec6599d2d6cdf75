"""What the embedded broker's TLS choice costs a reconnecting device, A/B: CPU per connect, and wall time.

Issue 16: every reboot of an OTA campaign reconnects with a full mutual-TLS handshake. `--broker-tls astarte` (the
default, BrokerConfig.broker_tls) makes mosquitto speak what Astarte's VerneMQ speaks: TLS 1.2 at most and no
session ticket; `openssl` keeps mosquitto's OpenSSL defaults: TLS 1.3 and 2 NewSessionTickets after each
handshake (simulator.backend.broker has the sources). This starts one mosquitto per choice (`--choices`, default
astarte,openssl; the same CA, server certificate and generated config, only `broker_tls` differs) and times, in
this thread, `--connects` times per round and client kind (`--clients`):

    TCP connect + mutual-TLS handshake + MQTT CONNECT / CONNACK (+ DISCONNECT) + close

with one device's SSLContext made once (the lean transport keeps a context per device). Client kinds: `nodelay`
(a socket with TCP_NODELAY, as the lean transport), `nagle` (without, as paho), `paho` (paho itself, the SDK's
client); a `_tls12` suffix caps the client at TLS 1.2 (against `openssl`: TLS 1.2 with tickets).
Reported per kind and choice: `client_us` (time.thread_time of this thread per connect: user + system CPU,
OpenSSL's ticket processing included), `broker_us` (mosquitto's CPU per connect, /proc/PID/schedstat),
`wall_us`; `negotiated` says which TLS version and whether the session held a ticket, per choice. Rounds
alternate the order of the choices (ABBA...) so load drifts on a shared machine hit both; figures are medians
over rounds, `diff_*` the median of the per-round paired differences (choice - first choice), `*_lower_rounds`
how many rounds the first choice cost less.

    python bench/broker_tickets.py [--rounds 7] [--connects 300] [--choices astarte,openssl] [--clients nodelay,paho]
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import host_info, median, save_result

REALM = "bench"
# MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s, empty client id (mosquitto assigns one); DISCONNECT.
_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0])
_CONNACK_OK = bytes([0x20, 2, 0, 0])
_DISCONNECT = bytes([0xE0, 0])


def connect_once(port: int, ctx: ssl.SSLContext, nodelay: bool) -> tuple[str, bool]:
    """One full connect; (TLS version, whether the session came with a ticket). Raises when the broker does not
    CONNACK.
    nodelay: TCP_NODELAY on the client socket, as the lean transport (simulator.transports.ports); paho, hence
    the SDK, leaves Nagle on (socket.create_connection), and then, over TLS 1.3 with no ticket, its CONNECT waits
    behind the unacknowledged Finished until the broker's delayed ACK (~40 ms on Linux): `wall_us` would show it
    (neither choice does that: TLS 1.2 ends with the server's Finished, TLS 1.3 here with its tickets)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        if nodelay:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return _mqtt_connect(tls)


def paho_connect_once(port: int, ctx: ssl.SSLContext) -> bool:
    """One connect with paho (the SDK's MQTT client, its own socket: Nagle on), until CONNACK, then disconnect.
    paho does not expose the TLS session: returns False."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    client.tls_set_context(ctx)
    done: list[object] = []
    client.on_connect = lambda _c, _u, _f, rc, _p=None: done.append(rc)
    client.connect("127.0.0.1", port, keepalive=60)
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        client.loop(0.01)
    if not done or getattr(done[0], "is_failure", False):
        raise RuntimeError(f"paho: no CONNACK ({done})")
    client.disconnect()
    client.loop(0.01)
    return False


def _mqtt_connect(tls: ssl.SSLSocket) -> tuple[str, bool]:
    tls.sendall(_CONNECT)
    got = b""
    while len(got) < 4:
        chunk = tls.recv(4 - len(got))
        if not chunk:
            break
        got += chunk
    if got != _CONNACK_OK:
        raise RuntimeError(f"no CONNACK: {got!r}")
    tls.sendall(_DISCONNECT)
    session = tls.session
    return str(tls.version()), session is not None and session.has_ticket


def _cpu_ns(pid: int) -> int:
    """The process's main-thread CPU time in ns (/proc/PID/schedstat; mosquitto 2.0 is single-threaded): finer
    than psutil's clock ticks (10 ms), which would round a round's few ms of ticket work."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def measure(port: int, broker_pid: int, ctx: ssl.SSLContext, n: int, mode: str) -> dict[str, float]:
    def once() -> None:
        if mode.startswith("paho"):
            paho_connect_once(port, ctx)
        else:
            connect_once(port, ctx, mode.startswith("nodelay"))

    for _ in range(5):  # warm-up: the first connects pay lazy initialisation on both sides
        once()
    b0 = _cpu_ns(broker_pid)
    t0, w0 = time.thread_time(), time.perf_counter()
    for _ in range(n):
        once()
    t1, w1 = time.thread_time(), time.perf_counter()
    broker_ns = _cpu_ns(broker_pid) - b0
    return {"client_us": (t1 - t0) / n * 1e6, "wall_us": (w1 - w0) / n * 1e6, "broker_us": broker_ns / n / 1e3}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--connects", type=int, default=300, help="connects per choice per round")
    ap.add_argument("--choices", default="astarte,openssl",
                    help="broker TLS choices to compare (BrokerConfig.broker_tls), comma-separated (first = base)")
    ap.add_argument("--clients", default="nodelay,nagle",
                    help="client sockets: nodelay (TCP_NODELAY, the lean transport), nagle (paho / the SDK); "
                         "paho (the SDK's client: CPU includes paho's own work); a _tls12 suffix caps the client "
                         "at TLS 1.2")
    ap.add_argument("--out", default="broker_tickets")
    args = ap.parse_args(argv)
    from simulator.broker_tls import BROKER_TLS_CHOICES

    counts = args.choices.split(",")
    if not set(counts) <= set(BROKER_TLS_CHOICES) or len(set(counts)) != len(counts):
        raise SystemExit(f"--choices: distinct ones of {', '.join(BROKER_TLS_CHOICES)}; got {args.choices!r}")
    clients = args.clients.split(",")
    modes = {f"{m}{v}" for m in ("nodelay", "nagle", "paho") for v in ("", "_tls12")}
    if not set(clients) <= modes:
        raise SystemExit(f"--clients: some of {', '.join(sorted(modes))}; got {args.clients!r}")

    from simulator.backend.broker import BrokerConfig
    from simulator.backend.broker_select import find_mosquitto
    from simulator.backend.ca import LocalCA
    from simulator.backend.mosquitto import MosquittoBroker

    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto not found")
    host_before = host_info()
    samples: dict[tuple[str, str], list[dict[str, float]]] = {(m, c): [] for m in clients for c in counts}
    negotiated: dict[str, dict[str, tuple[str, bool]]] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        ca = LocalCA(tmp / "ca")
        ca.ensure()
        srv_cert, srv_key = ca.server_cert()
        dev_cert, dev_key = ca.issue_client_cert(f"{REALM}/QUJDREVGR0hJSktMTU5PUA")
        ctxs: dict[str, ssl.SSLContext] = {}
        for mode in clients:
            ctxs[mode] = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca.ca_cert_path))
            ctxs[mode].load_cert_chain(str(dev_cert), str(dev_key))
            if mode.endswith("_tls12"):
                ctxs[mode].maximum_version = ssl.TLSVersion.TLSv1_2
        # verbose_log off: mosquitto's debug lines would add the same broker CPU to both and blur the difference.
        brokers = {c: MosquittoBroker(BrokerConfig("127.0.0.1", 0, ca.ca_cert_path, srv_cert, srv_key, REALM,
                                                   state_dir=tmp / f"broker-{c}", verbose_log=False,
                                                   broker_tls=c), binary=binary)
                   for c in counts}
        try:
            for b in brokers.values():
                b.start()
            for c, b in brokers.items():  # what each client context negotiates (sockets; paho's the same context)
                negotiated[c] = {m: connect_once(b.port, ctxs[m], nodelay=True) for m in clients}
            for r in range(args.rounds):
                for mode in clients:
                    order = counts if r % 2 == 0 else list(reversed(counts))
                    for c in order:
                        b = brokers[c]
                        assert b.pid is not None
                        samples[mode, c].append(measure(b.port, b.pid, ctxs[mode], args.connects, mode))
        finally:
            for b in brokers.values():
                b.stop()
    base = counts[0]
    doc: dict[str, Any] = {"connects_per_round": args.connects, "rounds": args.rounds,
                           "negotiated": {c: {m: {"version": v, "has_ticket": t} for m, (v, t) in by.items()}
                                          for c, by in negotiated.items()}}
    for mode in clients:
        for c in counts:
            got = samples[mode, c]
            doc[f"{mode}.{c}"] = {
                **{k: round(median(s[k] for s in got) or 0.0, 1) for k in ("client_us", "broker_us", "wall_us")},
                "client_us_rounds": [round(s["client_us"], 1) for s in got],
            }
            if c != base:
                for k in ("client_us", "broker_us", "wall_us"):
                    diffs = [s[k] - s0[k] for s, s0 in zip(got, samples[mode, base], strict=True)]
                    doc[f"{mode}.diff_{k}_{c}_minus_{base}"] = round(median(diffs) or 0.0, 1)
                    doc[f"{mode}.{k}_{base}_lower_rounds"] = f"{sum(d > 0 for d in diffs)}/{len(diffs)}"
    doc["host_before"] = host_before
    doc["host_after"] = host_info()
    print(json.dumps(doc, indent=2))
    save_result(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
