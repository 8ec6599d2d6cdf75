"""CPU of one Pairing API call on a kept-alive HTTPS connection in a gevent-patched process: pairing_http's
HttpsPool on ssl.SSLSocket (gevent's wrappers) versus on OpenSSL's object (simulator.transports.tls_stream).

The HTTPS server (TLS 1.3, ALPN http/1.1, a LocalCA server certificate, a verify-sized JSON answer) runs in
ANOTHER process, so getrusage(RUSAGE_SELF) counts the client only. `--rounds` rounds of `--n` verify-sized
POSTs per variant, interleaved; prints the median CPU µs per call with every round.

    python bench/pairing_pool_gevent.py [--rounds 5] [--n 500]
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--serve" not in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import argparse
import json
import resource
import socket
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import host_info, median

_BODY = (b'{"data": {"valid": true, "timestamp": "2026-12-07T00:00:00Z", "until": "2027-01-06T00:00:00Z", '
         b'"cause": "", "details": null}}')
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)


def _serve(cert: str, key: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    srv = socket.create_server(("127.0.0.1", 0))
    print(srv.getsockname()[1], flush=True)

    def one(conn: socket.socket) -> None:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            buf = b""
            while True:
                data = tls.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if len(rest) < length:
                        break
                    buf = rest[length:]
                    tls.sendall(_ANSWER)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(*args.serve)
        return 0

    import requests

    from simulator.backend.ca import LocalCA
    from simulator.transports.pairing_client import tls_context
    from simulator.transports.pairing_http import HttpsPool

    host_before = host_info()
    with tempfile.TemporaryDirectory() as tmp:
        ca = LocalCA(Path(tmp))
        ca.ensure()
        cert, key = ca.server_cert()
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(cert), str(key)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            url = f"https://127.0.0.1:{int(server.stdout.readline())}"
            headers = dict(requests.utils.default_headers())
            pools = {name: HttpsPool(url, tls_context(str(ca.ca_cert_path)), 30.0, 4, headers, native=flag)
                     for name, flag in (("sslsocket", False), ("native", True))}
            body = json.dumps({"data": {"client_crt": "x" * 700}}).encode()  # a P-256 certificate's PEM size
            auth = {"Authorization": "Bearer s"}
            rounds: dict[str, list[float]] = {name: [] for name in pools}
            for pool in pools.values():
                pool.request("POST", "/verify", auth, body)  # connect + handshake outside the measure
            for _ in range(args.rounds):
                for name, pool in pools.items():
                    t0 = _cpu_s()
                    for _ in range(args.n):
                        if pool.request("POST", "/verify", auth, body).status_code != 200:
                            raise RuntimeError("unexpected answer")
                    rounds[name].append((_cpu_s() - t0) / args.n * 1e6)
            opened = {name: pool.opened for name, pool in pools.items()}
            for pool in pools.values():
                pool.close()
        finally:
            server.kill()
            server.wait()
    doc: dict[str, Any] = {f"call_cpu_us.{k}": round(median(v) or 0.0, 1) for k, v in rounds.items()}
    doc["rounds_us"] = {k: [round(x, 1) for x in v] for k, v in rounds.items()}
    doc["connections_opened"] = opened
    doc["host_before"], doc["host_after"] = host_before, host_info()
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
