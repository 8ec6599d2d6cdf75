"""Per-device TLS client contexts, so that a device's reconnects do not decode its certificate and key again.

Why: the lean transport shares ONE client context among a process's devices and loads the connecting device's
certificate and key into it just before each handshake (native_tls.handshake). With OpenSSL 3.0 that load is
the most expensive step of a reconnect after the handshake itself: `load_cert_chain` of a P-256 certificate +
SEC1 key costs 750-1,140 us of CPU (PKCS#8, or both in one file: 750-1,230 us, no better), versus 2.0-2.4 ms
for the whole connect + mutual-TLS handshake with a context that already holds them, 3.0-3.5 ms loading per
connection (bench/tls_costs.py `load_cert_chain_us.*`, `handshake_us.*`; two invocations, 3 and 5 rounds, load
average 4.5-7.2: bench/results/tls_costs.json holds the second). OpenSSL 3.0 spends it in its generic key
decoder (~450 us; the EC-specific DER decoder would take ~120 us, but the ssl module reads only PEM files).
A context that keeps the device's certificate and key loaded skips it on every later connect.

When: at the device's FIRST connect. Making the context costs ~400 us on top of the load that connect pays
anyway (create_default_context with a one-certificate CA file: 400-460 us, SSL_CTX_new alone ~170-200 us;
measured like bench/tls_costs.py `context_per_device.create_us`, which includes the load). Made at the first
reconnect instead, it costs more than the load it replaces (~1.15 ms versus ~0.75 ms), and a campaign reboots
most devices only once or twice (bench/campaign_capacity.py: 800 reboots over 1,000 devices; py-spy showed
the creations in the play phase). Made at the first connect, it pays off from the first reconnect on.

The price is memory: such a context costs 24.7 KB of RSS with a one-certificate CA file (bench/tls_costs.py
`context_per_device.rss_kb_each`) and ~860 KB with the system CA store (measured the same way), against ~43 KB
for a whole connected lean device (README, 10,000 devices per process). Hence:

- at most `capacity` devices per process (DEFAULT_CAPACITY = 1,024: 15-25 MB). Measured in the product with
  bench/devices_per_process.py --devices 2000 --duration 5 (same state dir, main c733445 then this change, load
  average 5.4-5.6): 47.2 -> 55.0 KB of RSS per connected device, i.e. +15.6 MB, ~15 KB per context; at 10,000
  devices that is +1.6 KB per device. Devices past the bound keep loading into the shared context, as before.
  No eviction: with reboots spread over the fleet an LRU would evict each context just before its device comes
  back, paying a context creation per reconnect on top of the load;
- only with a CA file or with verification off (`ca_file` None means the system store: ~860 KB per context).

Nothing on the wire changes: the per-device context is made by the same factory as the shared one (same
protocol versions, ciphers, groups, verification), then holds the same certificate and key the shared one
would have loaded; no session is resumed (a client context caches no sessions; every connect is a full
handshake). A device whose certificate or key file changed (a new certificate after a failed verify) gets a
fresh context: the files' (inode, mtime, size) are compared on every connect (two stat calls, a few us).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable

__all__ = ["DEFAULT_CAPACITY", "DeviceContexts"]

DEFAULT_CAPACITY = 1024  # devices per process with their own context; ~25 MB at 24.7 KB each (see above)

_Signature = tuple[int, int, int]


def _signature(path: str) -> _Signature:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


class DeviceContexts:
    """Contexts keyed by certificate file, at most `capacity`. One per process (LeanFleet).

    Not locked: `context_for` does no I/O that could switch greenlets (stat and a file read are blocking
    calls under gevent), so two greenlets never interleave inside it."""

    def __init__(self, make: Callable[[], ssl.SSLContext], capacity: int = DEFAULT_CAPACITY) -> None:
        self._make = make
        self.capacity = capacity
        self._contexts: dict[str, tuple[_Signature, _Signature, ssl.SSLContext]] = {}
        self.created = 0  # contexts made so far (a changed certificate makes another)
        self.over_capacity = 0  # connects that used the shared context because the cache was full

    def __len__(self) -> int:
        return len(self._contexts)

    def context_for(self, cert_file: str, key_file: str) -> ssl.SSLContext | None:
        """The device's own context with its certificate and key loaded, or None when the cache is full (load
        them into the shared context). Raises OSError / ssl.SSLError for unreadable or mismatched files, as
        load_cert_chain does."""
        known = self._contexts.get(cert_file)
        cert_sig, key_sig = _signature(cert_file), _signature(key_file)
        if known is not None:
            if known[0] == cert_sig and known[1] == key_sig:
                return known[2]
            del self._contexts[cert_file]  # re-certified: its slot is taken again just below
        if len(self._contexts) >= self.capacity:
            self.over_capacity += 1
            return None
        ctx = self._make()
        ctx.load_cert_chain(cert_file, key_file)
        self._contexts[cert_file] = (cert_sig, key_sig, ctx)
        self.created += 1
        return ctx
