"""CPU of one reboot's reconnect on a LeanTransport against the embedded backend, A/B in one invocation (issue 16).

    python bench/reconnect_cost.py                                  # this tree
    python bench/reconnect_cost.py --baseline-root /tmp/main-tree   # A/B: each round runs both, alternating

When every OTA operation reboots, each operation pays `LeanTransport.disconnect()` then `connect()`: DISCONNECT
and close, the Pairing API's verify + info (pairing_client.onboard over pairing_http's keep-alive pool), TCP
connect, a full mutual-TLS handshake, CONNECT/CONNACK and the Astarte handshake (SUBSCRIBEs, introspection,
emptyCache, producer/properties at QoS 2, each acked). This times exactly that, for `--devices` devices
reconnected round-robin, in a child process that monkey-patches gevent first as the generator does; the
backend (mosquitto, the HTTPS Pairing API) runs in the parent, so the child's CPU is the generator's alone.

Figures, per reconnect, median of `--rounds` rounds, each root in its own child, alternating A, B, A, B...
(`all` in run order; `paired_diff_us_median`: the median over rounds of this - baseline):
- `reconnect_us`: process CPU (user + system, resource.getrusage) of disconnect + connect; `reconnect_user_us`
  its user part (the kernel's loopback work, accounted to whichever process runs, makes the system part noisy);
- `onboard_us`: process CPU of pairing_client.onboard alone (CredentialsCache.get, verify, info), timed in
  the same child after the reconnects, `--reconnects` calls.
- `reconnect_per_calibration`: the reconnects' CPU over that of a fixed workload timed before each block of
  25 reconnects in the same child (`calibration_us`: its CPU per run), so that a slower child (co-runners on a
  shared machine) counts less against its tree.
The TLS handshake (OpenSSL, ~2 ms) is in `reconnect_us`: a Python cut of tens of microseconds shows only over
enough rounds; `onboard_us` isolates the pairing part.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REALM = "reconnect"
_BLOCK = 25  # reconnects between two calibrations
_CALIBRATION_LOOPS = 400  # ~5-10 ms of CPU


def _calibrate(cpu: Any) -> float:
    """CPU seconds of a fixed piece of Python + C work (JSON, bytes, dicts), run before each block of
    reconnects: on a machine shared with other work the CPU time of the same code moves by +-30% from one child
    to the next (co-runners on the other hyperthread, caches); the ratio to this drifts less."""
    doc = {"data": {"client_crt": "-----BEGIN CERTIFICATE-----\n" + "A" * 700, "valid": True, "n": 12345}}
    t0 = cpu()
    for _ in range(_CALIBRATION_LOOPS):
        text = json.dumps(doc)
        json.loads(text)
        text.encode().split(b"A" * 50)
    return float(cpu() - t0)


def _child(info: dict[str, Any], reconnects: int) -> dict[str, float]:
    from gevent import monkey

    monkey.patch_all()
    import resource

    from simulator.interfaces.loader import load_interfaces
    from simulator.records import OnboardingTimes
    from simulator.transports.base import Endpoint
    from simulator.transports.lean_fleet import LeanFleet
    from simulator.transports.pairing_client import onboard

    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    def user() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_utime

    endpoint = Endpoint(realm=info["realm"], pairing_url=info["pairing_url"], agent_jwt=info["agent_jwt"],
                        ca_file=info["ca_file"], credentials_dir=info["credentials_dir"])
    fleet = LeanFleet(endpoint, load_interfaces(), revalidate=True, timeout_s=30.0)
    devs = [fleet.transport(d) for d in info["devices"]]
    for dev in devs:  # first connects: the per-device TLS contexts, the pooled pairing connection
        dev.connect()
    for dev in devs:  # one warm reconnect each
        dev.disconnect()
        dev.connect()
    spent = spent_user = calibrating = 0.0
    for start in range(0, reconnects, _BLOCK):
        calibrating += _calibrate(cpu)
        t0, u0 = cpu(), user()
        for k in range(start, min(reconnects, start + _BLOCK)):
            dev = devs[k % len(devs)]
            dev.disconnect()
            dev.connect()
            if not dev.connected:
                raise SystemExit(f"{dev.device_id} did not reconnect")
        spent, spent_user = spent + cpu() - t0, spent_user + user() - u0
    reconnect, reconnect_user = spent / reconnects, spent_user / reconnects
    t0 = cpu()
    for k in range(reconnects):
        onboard(fleet.pairing, fleet.cache, info["devices"][k % len(devs)], endpoint.agent_jwt,
                OnboardingTimes(), revalidate=True)
    pairing = (cpu() - t0) / reconnects
    fleet.stop()
    return {"calibration_us": calibrating / -(-reconnects // _BLOCK) * 1e6,
            "reconnect_per_calibration": spent / calibrating,
            "reconnect_us": reconnect * 1e6, "reconnect_user_us": reconnect_user * 1e6, "onboard_us": pairing * 1e6}


def _run(root: Path, info: dict[str, Any], reconnects: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(info),
                          "--reconnects", str(reconnects)],
                         env=env, capture_output=True, text=True, check=False, cwd=str(root), timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"child ({root}) failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--reconnects", type=int, default=300, help="per round and root")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline-root", default="", help="a tree holding another version's simulator/")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child), args.reconnects)))
        return 0

    sys.path.insert(0, str(ROOT))
    from bench.common import credentials_dir, host_info, provision, start_backend
    from simulator.ids import device_id

    backend = start_backend(REALM, collector=False)
    try:
        info = backend.info
        ids = [device_id(16, i) for i in range(args.devices)]
        provision(info, ids)
        child_info = {"realm": info.realm, "pairing_url": info.pairing_url, "agent_jwt": info.agent_jwt,
                      "ca_file": info.ca_file, "credentials_dir": str(credentials_dir(REALM)), "devices": ids}
        roots = {"this": ROOT} | ({"baseline": Path(args.baseline_root)} if args.baseline_root else {})
        samples: dict[str, dict[str, list[float]]] = {name: {} for name in roots}
        for _ in range(args.rounds):
            for name, root in roots.items():
                for key, value in _run(root, child_info, args.reconnects).items():
                    samples[name].setdefault(key, []).append(value)
    finally:
        backend.stop()
    doc: dict[str, Any] = {"devices": args.devices, "reconnects_per_round": args.reconnects,
                           "rounds": args.rounds, "host": host_info()}
    for name, figures in samples.items():
        doc[name] = {}
        for key, values in figures.items():
            doc[name][key] = {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
                              "all": [round(v, 1) for v in values]}
    if "baseline" in doc:
        doc["ratio_median"] = {key: round(doc["this"][key]["median"] / doc["baseline"][key]["median"], 3)
                               for key in doc["this"]}
        # this - baseline within each round (the two children ran back to back): steadier than the difference
        # of the medians when the machine's load drifts between rounds.
        doc["paired_diff_us_median"] = {
            key: round(statistics.median(a - b for a, b in zip(samples["this"][key], samples["baseline"][key],
                                                                strict=True)), 1)
            for key in samples["this"]}
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
