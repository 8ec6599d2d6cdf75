"""`fleetsim devices list|unregister|forget`: the devices a target knows from this state dir's credentials cache.

- `list`: the devices whose credentials (secret; key and certificate when obtained) are cached for the target.
- `unregister`: `DELETE /agent/devices/<id>` on the target's Pairing API with the agent JWT (the embedded
  backend and Astarte's Pairing API both have it), then the local credentials go too; the id can then be
  registered again (a device that already asked for a certificate cannot be registered twice otherwise).
- `forget`: remove the local credentials only (the target still has the device: a later run answers 422 for it).

Which devices: the ids given, else those of `--scenario` (its seed and id scheme), else every cached one.
The target is resolved as `fleetsim run` does (`--target embedded`: the backend already running on
`<state-dir>/backend` if there is one, else one started for the call; a backend.json: that running backend; a
target file: a real Astarte). Exit 0 when every device was handled, 1 when some unregistration failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from simulator.errors import UsageError
from simulator.target_info import TargetInfo
from simulator.transports.credentials import CredentialsCache

__all__ = ["HELP", "add_arguments", "run"]

HELP = "List, unregister or forget the devices of a target (the credentials cache of a state dir)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "unregister", "forget"),
                        help="list cached devices; unregister them on the target (and forget); forget locally")
    parser.add_argument("device_ids", nargs="*", metavar="DEVICE",
                        help="device ids (default: the --scenario's devices, else every cached device)")
    parser.add_argument("--target", default=None,
                        help="'embedded', a running backend's backend.json, or a real-Astarte target file "
                             "(default: the --scenario's target, else embedded)")
    parser.add_argument("--state-dir", default=os.environ.get("FLEETSIM_STATE_DIR", ".fleetsim"),
                        help="the state dir of `fleetsim run` (default .fleetsim, or $FLEETSIM_STATE_DIR)")
    parser.add_argument("--scenario", help="take the device ids and the realm from this scenario")
    parser.add_argument("--realm", default=None, help="Astarte realm (default: the scenario's, else fleetsim)")
    parser.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "amqtt"],
                        help="broker of the embedded backend when --target embedded starts it")


def _scenario_ids(path: str) -> tuple[list[str], str, str]:
    from simulator.ids import device_id
    from simulator.scenario.loader import load_scenario

    scenario = load_scenario(path)
    fleet = scenario.fleet
    try:
        ids = [device_id(scenario.seed, i, fleet.id_scheme, fleet.id_prefix) for i in range(fleet.devices)]
    except ValueError as exc:
        raise UsageError(f"{path}: fleet: {exc}") from None
    return ids, scenario.realm, scenario.target


def run(args: argparse.Namespace) -> int:
    from simulator.generator.target import open_target

    wanted: list[str] = list(args.device_ids)
    realm, target_name = args.realm, args.target
    if args.scenario:
        ids, scenario_realm, scenario_target = _scenario_ids(args.scenario)
        wanted = wanted or ids
        realm = realm or scenario_realm
        target_name = target_name or scenario_target
    realm = realm or "fleetsim"
    state_dir = Path(args.state_dir)
    with open_target(_running_or(target_name or "embedded", state_dir), realm, state_dir,
                     broker=args.broker) as target:
        cache = CredentialsCache.for_target(target.credentials_dir, target.realm, target.pairing_url)
        ids = wanted or cache.device_ids()
        where = f"realm {target.realm} at {target.pairing_url}"
        if args.action == "list":
            return _list(cache, ids, where)
        if args.action == "forget":
            for dev in ids:
                cache.forget(dev)
            print(f"forgot {len(ids)} device(s) of {where} (local credentials only; {cache.base})")
            return 0
        return _unregister(target, cache, ids, where)


def _running_or(target: str, state_dir: Path) -> str:
    """The embedded backend of this state dir as it runs now (`fleetsim backend` wrote its backend.json), or
    `target` unchanged: a second backend on the same state dir would share its device registry file."""
    info = state_dir / "backend" / "backend.json"
    if target != "embedded" or not info.is_file():
        return target
    from simulator.generator.target import target_from_backend_info

    try:
        target_from_backend_info(info, state_dir)  # probes it: a file left by a killed backend is skipped
    except UsageError:
        return target
    return str(info)


def _list(cache: CredentialsCache, ids: list[str], where: str) -> int:
    cached = set(cache.device_ids())
    print(f"{len(cached)} device(s) cached for {where} in {cache.base}")
    for dev in ids:
        creds = cache.get(dev) if dev in cached else None
        state = "not cached" if creds is None else (
            "secret + certificate" if creds.cert_pem is not None else "secret only")
        print(f"{dev}  {state}")
    return 0


def _unregister(target: TargetInfo, cache: CredentialsCache, ids: list[str], where: str) -> int:
    from simulator.transports.pairing_client import PairingClient, PairingError

    client = PairingClient(target.pairing_url, target.realm, target.ca_file or None, target.ignore_ssl_errors)
    done = absent = failed = 0
    try:
        for dev in ids:
            try:
                client.unregister(dev, target.agent_jwt)
                done += 1
            except PairingError as exc:
                if exc.status != 404:
                    print(f"{dev}: not unregistered: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                absent += 1  # not registered on the target: nothing to free; the local copy is stale
            cache.forget(dev)
    finally:
        client.close()
    print(f"unregistered {done} device(s) of {where}; {absent} were not registered; {failed} failed")
    return 1 if failed else 0
