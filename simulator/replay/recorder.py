"""A finished run -> a replay file: its send log (events.sent.csv) as the stream the fleet offered.

Each SendRecord becomes one `event` entry at its *intended* time (the plan's schedule, not the generator's
late send), relative to the run's start (summary.json `started_at_epoch`, else the first intended time), so a
replay keeps the plan's per-device order and gaps. Every offered event is kept, including those that failed or
were never acked: the replay offers what the devices offered.

The send log carries no `message` and no reboots. With the run's scenario (`scenario_path`), the plan is
rebuilt from it and the run's seed (simulator.plan, same seed => same plan) and supplies both exactly: the
message of each event (joined on EventKey) and the REBOOT and post-reboot property actions. Without it,
reboots are inferred (`infer_reboots`): the runtime reboots between its last Rebooting and the Success (new
image) or Failure+SystemRollback (old image) of the same request (edgehog-device-runtime
src/ota/ota_handler.rs; docs/protocol.md section 4), so the device is offline for that gap."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from simulator.errors import UsageError
from simulator.events import ActionKind, EventKey, OtaStatus, OtaStatusCode, PlannedAction
from simulator.outputs.csv_logs import SENT_FILE, read_send_log
from simulator.replay.replay_file import ReplayEntry, ReplayEvent, ReplayHeader, ReplayProperty, ReplayReboot

__all__ = ["infer_reboots", "record_run"]

# A reboot shorter than this is not inferred (seconds): Success right after Rebooting means the recording
# missed the reboot (or the device never went down); a zero-length disconnect would only add noise.
MIN_REBOOT_GAP_S = 0.001


def infer_reboots(events: Sequence[ReplayEvent]) -> list[ReplayReboot]:
    """Reboots implied by Rebooting -> (gap) -> Success | Failure+SystemRollback of the same request."""
    by_device: dict[str, list[ReplayEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.at):
        by_device[event.device].append(event)
    reboots: list[ReplayReboot] = []
    for device, stream in by_device.items():
        for before, after in pairwise(stream):
            if before.status != OtaStatus.REBOOTING or before.request_uuid != after.request_uuid:
                continue
            came_back = after.status == OtaStatus.SUCCESS or (
                after.status == OtaStatus.FAILURE and after.code == OtaStatusCode.SYSTEM_ROLLBACK
            )
            gap = after.at - before.at
            if came_back and gap >= MIN_REBOOT_GAP_S:
                reboots.append(ReplayReboot(device=device, at=before.at, offline=gap))
    return reboots


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable summary: {exc}") from None
    return doc if isinstance(doc, dict) else {}


def _plan_entries(
    scenario_path: str,
    summary: dict[str, Any],
    keys: set[EventKey],
) -> tuple[dict[EventKey, str], list[ReplayEntry]]:
    """(message per EventKey, reboot + property entries) from the run's rebuilt plan."""
    from simulator.run.plans import plan_for
    from simulator.scenario.loader import load_scenario

    overrides: dict[str, object] = {}
    if isinstance(summary.get("seed"), int):
        overrides["seed"] = summary["seed"]
    if isinstance(summary.get("devices"), int):
        overrides["devices"] = summary["devices"]
    plan = plan_for(load_scenario(scenario_path, overrides))
    messages: dict[EventKey, str] = {}
    extra: list[ReplayEntry] = []
    last_sent: dict[str, float] = defaultdict(float)
    planned_keys = 0
    candidates: list[tuple[int, PlannedAction]] = []  # reboots and properties, kept if the run got there
    # One pass over the plan as it is generated (a device's actions come in time order).
    for step in plan.steps():
        if step is None:
            continue
        device = plan.device_ids[step.device]
        for action in step.actions:
            if action.kind is ActionKind.PUBLISH and isinstance(action.value, dict):
                v = action.value
                key: EventKey = (
                    device,
                    str(v["requestUUID"]),
                    str(v["status"]),
                    int(v["statusProgress"]),
                    action.occurrence,
                )
                if key in keys:
                    planned_keys += 1
                    messages[key] = str(v.get("message", ""))
                    last_sent[device] = max(last_sent[device], action.offset_us / 1e6)
            elif action.kind is ActionKind.REBOOT or (
                action.kind is ActionKind.PROPERTY and isinstance(action.value, str | int | float | bool)
            ):
                candidates.append((step.device, action))
    candidates.sort(key=lambda c: c[0])  # stable: device by device, each in time order (the file's tie order)
    for index, action in candidates:
        device = plan.device_ids[index]
        at = action.offset_us / 1e6
        if at > last_sent.get(device, -1.0):
            continue  # after the device's last recorded event: the run never got there
        if action.kind is ActionKind.REBOOT:
            extra.append(ReplayReboot(device=device, at=at, offline=action.duration_us / 1e6))
        elif isinstance(action.value, str | int | float | bool):
            extra.append(
                ReplayProperty(
                    device=device, at=at, interface=action.interface, path=action.path, value=action.value
                )
            )
    if keys and planned_keys == 0:
        raise UsageError(
            f"{scenario_path}: its plan shares no event with the recorded run (another scenario, or "
            "different overrides?); record without --scenario to infer reboots instead"
        )
    return messages, extra


def _tie_rank(entry: ReplayEntry) -> int:
    """Order at equal times: running events, the reboot, the image properties, then the final event."""
    if isinstance(entry, ReplayReboot):
        return 1
    if isinstance(entry, ReplayProperty):
        return 2
    return 3 if entry.status in (OtaStatus.SUCCESS, OtaStatus.FAILURE) else 0


def record_run(
    run_dir: str | os.PathLike[str],
    scenario_path: str | None = None,
) -> tuple[ReplayHeader, list[ReplayEntry]]:
    """The replay entries of the run in `run_dir` (see the module docstring)."""
    root = Path(run_dir)
    sends = read_send_log(root / SENT_FILE)
    if not sends:
        raise UsageError(f"{root / SENT_FILE}: no events to record")
    summary = _summary(root)
    start = summary.get("started_at_epoch")
    if not isinstance(start, int | float) or start > min(r.intended for r in sends):
        start = min(r.intended for r in sends)
    realm = str(((summary.get("extra") or {}).get("target") or {}).get("realm") or "fleetsim")
    events = [
        ReplayEvent(
            device=r.key[0],
            at=max(0.0, r.intended - start),
            request_uuid=r.key[1],
            status=r.key[2],
            progress=r.key[3],
            code=r.code,
        )
        for r in sends
    ]
    keyed = {
        (e.device, e.request_uuid, e.status, e.progress, r.key[4]): i
        for i, (e, r) in enumerate(zip(events, sends, strict=True))
    }
    entries: list[ReplayEntry]
    if scenario_path:
        messages, extra = _plan_entries(scenario_path, summary, set(keyed))
        for key, i in keyed.items():
            if messages.get(key):
                events[i] = replace(events[i], message=messages[key])
        entries = [*events, *extra]
    else:
        entries = [*events, *infer_reboots(events)]
    # Same time: the reboot after the Rebooting it follows; properties after the reboot (stable sort).
    entries.sort(key=lambda e: (e.at, _tie_rank(e)))
    note = (
        f"scenario {summary.get('scenario', '?')}, seed {summary.get('seed', '?')}, "
        f"{len(sends)} events; reboots {'from the plan' if scenario_path else 'inferred'}"
    )
    return ReplayHeader(realm=realm, source=str(root), note=note), entries
