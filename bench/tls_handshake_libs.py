"""Client-side CPU of one full mutual-TLS handshake: the stdlib `ssl` module versus pyOpenSSL.

Issue 16 lead: the stdlib `ssl` of this Python links the system OpenSSL (3.0.x here), known for slow
handshakes (provider lookups and decoders on every handshake), while `cryptography` wheels bundle a newer
OpenSSL that pyOpenSSL drives. This measures, per connect + handshake + one byte + close against a mutual-TLS
server in ANOTHER PROCESS (so getrusage(RUSAGE_SELF) counts the client only), with a device certificate and
EC P-256 key issued by simulator.backend.ca.LocalCA and the CA as its trust anchor:

- `stdlib.tls13`, `stdlib.tls12`: ssl.create_default_context(cafile=CA) with the device's certificate loaded
  once (the per-device contexts of simulator.transports.tls_contexts), server name checked;
- `stdlib.tls13_noverify`: the same without verification of the server certificate (its cost);
- `pyopenssl.tls13`, `pyopenssl.tls12`, `pyopenssl.tls13_noverify`: the same with OpenSSL.SSL.Context /
  Connection (the peer-IP check set with X509_VERIFY_PARAM_set1_ip, as CPython does for an IP server name).

Each variant runs `--n` handshakes per round, rounds interleaved (A/B in the same invocation); the figure is
the median over `--rounds` of the CPU µs per handshake (user + system), with the machine's load average.

    python bench/tls_handshake_libs.py [--rounds 5] [--n 200]    # needs pyOpenSSL (pip install pyopenssl),
                                                                  # not a dependency of fleetsim

Results here (stdlib on OpenSSL 3.0.19, pyOpenSSL 26.4.0 on cryptography 50.0.2's OpenSSL 4.0.3), CPU µs per
handshake, median of 5 rounds of 100, two invocations (2026-12-07 ~02:42Z at load average 1.2-1.8, ~02:52Z at
8.5-8.9): stdlib TLS 1.3 2,541 / 2,792, TLS 1.2 2,310 / 2,507, TLS 1.3 unverified 2,589 / 2,833; pyOpenSSL
TLS 1.3 2,023 / 2,232, TLS 1.2 1,644 / 1,953, TLS 1.3 unverified 1,961 / 2,111, and (second run only) TLS 1.3
offering the stdlib's groups (no ML-KEM key share) 1,983. So pyOpenSSL saves 20 % at the same TLS version with
its default groups and 29 % with the same groups as the stdlib (~0.5-0.8 ms per reconnect): at the 30 % bar
that would pay for a second TLS stack and a new dependency, not clearly past it. Verifying the server
certificate costs nothing measurable. The handshake is ~8x the public-key work it needs (openssl speed here:
P-256 sign 29 µs, verify 92 µs, X25519 47 µs): the rest is OpenSSL's per-handshake overhead (libcrypto ~46 %
of the client's samples under perf, libc malloc/locks ~15 %, kernel TCP ~17 %). Of the stdlib's figure,
~300-450 µs is the client processing the two TLS 1.3 NewSessionTickets an OpenSSL server sends after the
handshake (measured with the server's SSLContext.num_tickets 2 vs 0); the embedded mosquitto sends them only with
`--broker-tls openssl`, its default being Astarte's TLS 1.2 without tickets (README, "TLS of the embedded broker").
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import host_info, median, save_result


def _serve(ca: str, cert: str, key: str) -> None:
    """The server process: accept, mutual TLS (1.2 or 1.3, as the client offers), one byte, wait for close."""
    import threading

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    srv = socket.create_server(("127.0.0.1", 0), backlog=128)
    print(srv.getsockname()[1], flush=True)

    def one(conn: socket.socket) -> None:
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"x")
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _stdlib(port: int, ca: str, cert: str, key: str, tls12: bool, verify: bool) -> Callable[[], None]:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)

    def once() -> None:
        raw = socket.create_connection(("127.0.0.1", port))
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            if tls.recv(1) != b"x":
                raise RuntimeError("no byte from the TLS server")

    return once


def _pyopenssl(port: int, ca: str, cert: str, key: str, tls12: bool, verify: bool,
               groups: bytes = b"") -> Callable[[], None]:
    from OpenSSL import SSL
    from OpenSSL._util import ffi, lib

    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if groups and not lib.SSL_CTX_set1_curves_list(ctx._context, groups):
        raise RuntimeError(f"groups {groups!r} refused")
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if tls12:
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.load_verify_locations(ca)
    ctx.use_certificate_file(cert)
    ctx.use_privatekey_file(key)
    ctx.set_verify(SSL.VERIFY_PEER if verify else SSL.VERIFY_NONE)
    ip = ipaddress.ip_address("127.0.0.1").packed

    def once() -> None:
        raw = socket.create_connection(("127.0.0.1", port))
        conn = SSL.Connection(ctx, raw)
        if verify:
            param = lib.SSL_get0_param(conn._ssl)
            if not lib.X509_VERIFY_PARAM_set1_ip(param, ffi.from_buffer(ip), len(ip)):
                raise RuntimeError("X509_VERIFY_PARAM_set1_ip failed")
        conn.set_connect_state()
        conn.do_handshake()
        if conn.recv(1) != b"x":
            raise RuntimeError("no byte from the TLS server")
        conn.shutdown()
        raw.close()

    return once


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", default="tls_handshake_libs")
    ap.add_argument("--serve", nargs=3, metavar=("CA", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(*args.serve)
        return 0

    from OpenSSL import SSL

    from simulator.backend.ca import LocalCA

    host_before = host_info()
    with tempfile.TemporaryDirectory() as tmp_s:
        ca = LocalCA(Path(tmp_s))
        ca.ensure()
        srv_cert, srv_key = ca.server_cert()
        dev_cert, dev_key = (str(p) for p in ca.issue_client_cert("tlslibs/QUJDREVGR0hJSktMTU5PUA"))
        ca_file = str(ca.ca_cert_path)
        server = subprocess.Popen([sys.executable, __file__, "--serve", ca_file, str(srv_cert), str(srv_key)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            variants: dict[str, Callable[[], None]] = {}
            for lib_name, make in (("stdlib", _stdlib), ("pyopenssl", _pyopenssl)):
                variants[f"{lib_name}.tls13"] = make(port, ca_file, dev_cert, dev_key, False, True)
                variants[f"{lib_name}.tls12"] = make(port, ca_file, dev_cert, dev_key, True, True)
                variants[f"{lib_name}.tls13_noverify"] = make(port, ca_file, dev_cert, dev_key, False, False)
            # OpenSSL >= 3.5 also offers (and makes a key share for) X25519MLKEM768 by default; the stdlib's
            # OpenSSL 3.0 offers these groups, x25519 first, with one key share (x25519):
            variants["pyopenssl.tls13_stdlib_groups"] = _pyopenssl(port, ca_file, dev_cert, dev_key, False, True,
                                                                   b"X25519:P-256:X448:P-521:P-384")
            rounds: dict[str, list[float]] = {name: [] for name in variants}
            for fn in variants.values():
                fn()  # warm up
            for _ in range(args.rounds):
                for name, fn in variants.items():
                    t0 = _cpu_s()
                    for _ in range(args.n):
                        fn()
                    rounds[name].append((_cpu_s() - t0) / args.n * 1e6)
                time.sleep(0.05)  # sleep-ok: let the server process drain its closing threads between rounds
        finally:
            server.kill()
            server.wait()
    doc: dict[str, Any] = {f"handshake_cpu_us.{k}": round(median(v) or 0.0, 1) for k, v in rounds.items()}
    doc["rounds_us"] = {k: [round(x, 1) for x in v] for k, v in rounds.items()}
    doc["stdlib_openssl"] = ssl.OPENSSL_VERSION
    doc["pyopenssl_openssl"] = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    doc["rounds"], doc["n"] = args.rounds, args.n
    doc["host_before"], doc["host_after"] = host_before, host_info()
    print(json.dumps(doc, indent=2))
    save_result(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
