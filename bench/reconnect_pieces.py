"""CPU of pieces of a reboot's reconnect, in a gevent-patched child, A/B in one invocation (issue 16).

    python bench/reconnect_pieces.py                                  # this tree
    python bench/reconnect_pieces.py --baseline-root /tmp/main-tree   # A/B: each round runs both, alternating

bench/reconnect_cost.py times whole reconnects, whose ~3 ms (a TLS handshake, two Pairing API calls) move by
more from one child to the next on a shared machine than a cut of ten microseconds. This times the pieces such
cuts touch, each in a tight loop, with nothing else in the process:

- `credentials_get_us`: CredentialsCache.get of a cached device (every reconnect, pairing_client.onboard);
- `tcp_connect_us`: ports.open_connection to a loopback listener, the descriptor taken over as
  native_tls.handshake takes it (a standard socket as it is, a gevent socket's descriptor into one) and
  closed; the listener accepts and closes in the same process (both trees pay it alike);
- `pairing_call_us`: one verify-sized POST through pairing_http.HttpsPool on a kept-alive TLS connection
  (tls_stream's reads and waits), the HTTPS responder a greenlet of the same process (both trees alike).

Figures: CPU µs per call (resource.getrusage, user + system), median and minimum of `--rounds` rounds, each
root in its own child, alternating A, B, A, B... (under load from other work the minimum, the least disturbed
round, is the steadier of the two).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _child(n: int) -> dict[str, float]:
    from gevent import monkey

    monkey.patch_all()
    import resource
    import socket

    import gevent

    from simulator.transports.credentials import CredentialsCache, DeviceCredentials
    from simulator.transports.ports import open_connection

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        from simulator.transports.pairing_client import generate_key, key_to_pem

        cache = CredentialsCache(tmp, "bench")
        dev = "AAAAAAAAAAAAAAAAAAAAAA"
        key = key_to_pem(generate_key())
        cache.put(dev, DeviceCredentials("secret", key, None, "mqtts://127.0.0.1:8883/"))
        # A certificate file as the cache stores it; get() parses it once, then only compares signatures.
        crt = _self_signed(key)
        cache.put(dev, DeviceCredentials("secret", key, crt, "mqtts://127.0.0.1:8883/"))
        assert cache.get(dev) is not None
        t0 = cpu()
        for _ in range(n * 10):
            cache.get(dev)
        out["credentials_get_us"] = (cpu() - t0) / (n * 10) * 1e6

    original = monkey.get_original("socket", "socket")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            conn.close()

    acceptor = gevent.spawn(accept)
    dest = server.getsockname()
    t0 = cpu()
    for _ in range(n):
        tcp = open_connection(dest, "", 5.0)
        raw = tcp if type(tcp) is original else original(tcp.family, tcp.type, tcp.proto, fileno=tcp.detach())
        raw.close()
    gevent.sleep(0.01)  # the last accepts
    out["tcp_connect_us"] = (cpu() - t0) / n * 1e6
    acceptor.kill()
    server.close()
    out["pairing_call_us"] = _pairing_calls(n, cpu)
    return out


_BODY = b'{"data": {"valid": true}}'
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)


def _pairing_calls(n: int, cpu: Any) -> float:
    """CPU per verify-sized POST through pairing_http.HttpsPool (tls_stream under gevent: its waits) on a kept-
    alive TLS 1.3 connection to an HTTPS responder in the same process (both trees pay its share alike)."""
    import socket
    import ssl

    import gevent
    import requests

    from simulator.backend.ca import LocalCA
    from simulator.transports.pairing_client import tls_context
    from simulator.transports.pairing_http import HttpsPool

    with tempfile.TemporaryDirectory() as tmp:
        ca = LocalCA(Path(tmp) / "ca")
        ca.ensure()
        cert, key = ca.server_cert()
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(str(cert), str(key))
        listener = socket.create_server(("127.0.0.1", 0))

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                buf = b""
                while True:
                    data = tls.recv(65536)
                    if not data:
                        return
                    buf += data
                    while b"\r\n\r\n" in buf:
                        head, _, rest = buf.partition(b"\r\n\r\n")
                        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                        if len(rest) < length:
                            break
                        buf = rest[length:]
                        tls.sendall(_ANSWER)

        responder = gevent.spawn(serve)
        pool = HttpsPool(f"https://127.0.0.1:{listener.getsockname()[1]}/pairing", tls_context(str(ca.ca_cert_path)),
                         30.0, 1, dict(requests.utils.default_headers()))
        body = b'{"data": {"client_crt": "' + b"A" * 700 + b'"}}'
        auth = {"Authorization": "Bearer " + "s" * 44}
        pool.request("POST", "/pairing/v1/r/devices/D/verify", auth, body)  # connect + handshake first
        t0 = cpu()
        for _ in range(n):
            pool.request("POST", "/pairing/v1/r/devices/D/verify", auth, body)
        spent = float(cpu() - t0)
        pool.close()
        responder.join(5.0)
        listener.close()
    return spent / n * 1e6


def _self_signed(key_pem: bytes) -> bytes:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key: Any = serialization.load_pem_private_key(key_pem, password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _run(root: Path, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(n)],
                         env=env, capture_output=True, text=True, check=False, cwd=str(root), timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"child ({root}) failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="connects per round (gets: 10x)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", type=int, default=0)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0
    roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in roots}
    for _ in range(args.rounds):
        for name, root in roots.items():
            for key, value in _run(root, args.n).items():
                samples[name].setdefault(key, []).append(value)
    doc: dict[str, Any] = {"n": args.n, "rounds": args.rounds, "load_avg_1m": os.getloadavg()[0]}
    for name, figures in samples.items():
        doc[name] = {key: {"median": round(statistics.median(v), 2), "min": round(min(v), 2),
                           "all": [round(x, 2) for x in v]}
                     for key, v in figures.items()}
    if "baseline" in doc:
        doc["paired_diff_us_median"] = {
            key: round(statistics.median(a - b for a, b in zip(samples["this"][key], samples["baseline"][key],
                                                                strict=True)), 2)
            for key in samples["this"]}
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
