"""Replay file, recorder, AppEngine import and the replay plan (no broker: pure functions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.errors import ConfigErrors, UsageError
from simulator.events import ActionKind
from simulator.ids import device_id
from simulator.outputs.csv_logs import SENT_FILE, write_send_log
from simulator.plan import build_plan
from simulator.records import SendRecord
from simulator.replay.appengine_import import export_rows, import_exports, parse_export_specs
from simulator.replay.player import build_replay_plan, read_devices_map
from simulator.replay.recorder import infer_reboots, record_run
from simulator.replay.replay_file import (
    ReplayEvent,
    ReplayHeader,
    ReplayProperty,
    ReplayReboot,
    read_replay,
    write_replay,
)
from simulator.scenario.loader import load_scenario

FIXTURES = Path(__file__).resolve().parents[3] / "simulator" / "replay" / "fixtures"
DEV = [device_id(7, i, "sequential", "t") for i in range(3)]
U = "11111111-2222-4333-8444-555555555555"


def _ev(dev: int, at: float, status: str, progress: int = 0, code: str = "", uuid: str = U) -> ReplayEvent:
    return ReplayEvent(DEV[dev], at, uuid, status, progress, code, "")


def test_round_trip_keeps_entries_and_per_device_order(tmp_path: Path) -> None:
    entries = [
        _ev(0, 0.0, "Acknowledged"),
        _ev(1, 0.5, "Acknowledged"),
        _ev(0, 1.0, "Rebooting"),
        ReplayReboot(DEV[0], 1.0, 2.5),
        ReplayProperty(DEV[0], 3.5, "io.edgehog.devicemanager.BaseImage", "/version", "1.1.0"),
        _ev(0, 3.5, "Success"),
    ]
    path = write_replay(tmp_path / "r.jsonl", ReplayHeader(realm="qa", note="n"), entries)
    header, back = read_replay(path)
    assert header.realm == "qa"
    assert back == entries


def test_bad_lines_are_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"format": "fleetsim-replay", "version": 1}\n'
        f'{{"kind": "event", "device": "{DEV[0]}", "at": 0, "requestUUID": "u", "status": "Done"}}\n'
        "# a comment\n"
        f'{{"kind": "reboot", "device": "{DEV[0]}", "at": -1, "offline": 2}}\n'
        "not json\n"
    )
    with pytest.raises(ConfigErrors) as err:
        read_replay(path)
    text = str(err.value)
    assert f"{path}:2: status: unknown OTA status 'Done'" in text
    assert f"{path}:4: at: must be >= 0" in text
    assert f"{path}:5: not valid JSON" in text


def test_infer_reboots_between_last_rebooting_and_success_or_rollback() -> None:
    events = [
        _ev(0, 0, "Rebooting"),
        _ev(0, 30, "Rebooting"),
        _ev(0, 42, "Success"),
        _ev(1, 0, "Rebooting"),
        _ev(1, 5, "Failure", code="SystemRollback"),
        _ev(2, 0, "Rebooting"),
        _ev(2, 5, "Failure", code="InternalError"),
    ]
    reboots = infer_reboots(events)
    assert reboots == [ReplayReboot(DEV[0], 30, 12), ReplayReboot(DEV[1], 0, 5)]


def test_plan_keeps_order_scales_time_and_counts_occurrences() -> None:
    entries = [
        _ev(0, 10.0, "Acknowledged"),
        _ev(0, 12.0, "Rebooting"),
        _ev(0, 42.0, "Rebooting"),
        ReplayReboot(DEV[0], 42.0, 8.0),
        _ev(0, 50.0, "Success"),
        _ev(1, 11.0, "Acknowledged"),
    ]
    plan = build_replay_plan(entries, speed=2.0)
    assert plan.device_ids == (DEV[0], DEV[1])  # order of first appearance
    acts = plan.actions_for(0)
    assert [(a.kind, a.offset_us) for a in acts] == [
        (ActionKind.PUBLISH, 0),
        (ActionKind.PUBLISH, 1_000_000),
        (ActionKind.PUBLISH, 16_000_000),
        (ActionKind.REBOOT, 16_000_000),
        (ActionKind.PUBLISH, 20_000_000),
    ]
    assert acts[3].duration_us == 4_000_000
    assert [a.occurrence for a in acts if a.kind is ActionKind.PUBLISH] == [0, 0, 1, 0]
    assert plan.planned_events == 5
    assert [(op.device, op.outcome) for op in plan.operations] == [(0, "success"), (1, "unfinished")]


def test_devices_map_renames_and_bad_ids_are_refused(tmp_path: Path) -> None:
    entries = [ReplayEvent("field-device-1", 0, U, "Acknowledged")]
    with pytest.raises(ConfigErrors, match="not an Astarte device id"):
        build_replay_plan(entries)
    mapping = tmp_path / "map.txt"
    mapping.write_text(f"# recorded=target\nfield-device-1={DEV[2]}\n")
    plan = build_replay_plan(entries, devices_map=read_devices_map(str(mapping)))
    assert plan.device_ids == (DEV[2],)
    with pytest.raises(UsageError, match="--speed"):
        build_replay_plan(entries, speed=0, devices_map={"field-device-1": DEV[2]})


def test_record_run_uses_intended_times_and_infers_reboots(tmp_path: Path) -> None:
    start = 1_800_000_000.0
    sends = [
        SendRecord((DEV[0], U, "Acknowledged", 0, 0), start + 0.5, start + 0.6, 1, start + 0.7),
        SendRecord((DEV[0], U, "Rebooting", 0, 0), start + 2.0, start + 2.9, 1, None, "never_acked"),
        SendRecord((DEV[0], U, "Success", 0, 0), start + 6.0, None, None, None, "disconnected"),
    ]
    write_send_log(tmp_path / SENT_FILE, sends)
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {"started_at_epoch": start, "scenario": "s", "seed": 3, "extra": {"target": {"realm": "qa"}}}
        )
    )
    header, entries = record_run(tmp_path)
    assert header.realm == "qa"
    assert entries == [
        _ev(0, 0.5, "Acknowledged"),
        _ev(0, 2.0, "Rebooting"),
        ReplayReboot(DEV[0], 2.0, 4.0),
        _ev(0, 6.0, "Success"),
    ]


def test_record_run_with_the_scenario_takes_messages_and_reboots_from_the_plan(tmp_path: Path) -> None:
    scenario_path = Path(__file__).resolve().parents[3] / "scenarios" / "ci-regression.yaml"
    scenario = load_scenario(scenario_path, {"devices": 3})
    plan = build_plan(scenario)
    start = 1_800_000_000.0
    sends = []
    for i, dev in enumerate(plan.device_ids):
        for a in plan.actions_for(i):
            if a.kind is ActionKind.PUBLISH and isinstance(a.value, dict):
                key = (
                    dev,
                    a.value["requestUUID"],
                    a.value["status"],
                    a.value["statusProgress"],
                    a.occurrence,
                )
                sends.append(
                    SendRecord(key, start + a.offset_us / 1e6, None, None, code=a.value["statusCode"])
                )
    write_send_log(tmp_path / SENT_FILE, sends)
    (tmp_path / "summary.json").write_text(
        json.dumps({"started_at_epoch": start, "seed": scenario.seed, "devices": 3})
    )
    _, entries = record_run(tmp_path, str(scenario_path))
    planned_reboots = sum(1 for i in range(3) for a in plan.actions_for(i) if a.kind is ActionKind.REBOOT)
    assert sum(isinstance(e, ReplayReboot) for e in entries) == planned_reboots > 0
    rollback = [e for e in entries if isinstance(e, ReplayEvent) and e.code == "SystemRollback"]
    assert all(e.message == "Unable to switch slot" for e in rollback)
    replayed = build_replay_plan(entries)
    assert replayed.planned_events == plan.planned_events


def _export(rows: object, **extra: object) -> dict[str, object]:
    return {"data": rows, **extra}


def test_appengine_export_formats_all_give_the_same_rows(tmp_path: Path) -> None:
    rows = [
        {
            "timestamp": "2026-01-01T10:00:00.000Z",
            "requestUUID": U,
            "status": "Acknowledged",
            "statusProgress": 0,
            "statusCode": "",
            "message": "",
        },
        {
            "timestamp": "2026-01-01T10:00:02.500Z",
            "requestUUID": U,
            "status": "Rebooting",
            "statusProgress": 0,
            "statusCode": "",
            "message": "",
        },
        {
            "timestamp": 1767261607500,
            "requestUUID": U,
            "status": "Success",
            "statusProgress": 0,
            "statusCode": "",
            "message": "",
        },
    ]
    leaves = ["timestamp", "requestUUID", "status", "statusProgress", "statusCode", "message"]
    table = _export(
        [[r[k] for k in leaves] for r in rows],
        metadata={"columns": {k: i for i, k in enumerate(leaves)}, "table_header": leaves},
    )
    disjoint = _export({k: [[r[k], r["timestamp"]] for r in rows] for k in leaves[1:]})
    for doc in (_export(rows), _export({"event": rows}), table):
        assert export_rows(doc, "x") == rows
    assert [r["status"] for r in export_rows(disjoint, "x")] == ["Acknowledged", "Rebooting", "Success"]
    path = tmp_path / f"{DEV[0]}.json"
    path.write_text(json.dumps(_export(rows)))
    header, entries = import_exports(parse_export_specs([str(path)]), realm="qa")
    assert header.realm == "qa"
    assert entries == [
        _ev(0, 0.0, "Acknowledged"),
        _ev(0, 2.5, "Rebooting"),
        _ev(0, 7.5, "Success"),
        ReplayReboot(DEV[0], 2.5, 5.0),
    ]


def test_appengine_export_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(_export([{"timestamp": "yesterday", "requestUUID": U, "status": "Success"}])))
    with pytest.raises(UsageError, match=r"data\[0\]: timestamp: not ISO 8601"):
        import_exports([(DEV[0], str(path))])
    path.write_text(json.dumps({"nothing": 1}))
    with pytest.raises(UsageError, match="not an AppEngine export"):
        import_exports([(DEV[0], str(path))])


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jsonl")))
def test_field_bug_fixtures_load_and_plan(name: str) -> None:
    header, entries = read_replay(FIXTURES / name)
    assert header.source.startswith("fixture: edgehog#")
    plan = build_replay_plan(entries)
    assert plan.planned_events == sum(isinstance(e, ReplayEvent) for e in entries)
    outcomes = {op.outcome for op in plan.operations}
    expected = {"edgehog-1447": "unfinished", "edgehog-1469": "success", "edgehog-915": "failure"}
    assert expected[name.split("-device")[0].split("-status")[0].split("-two")[0]] in outcomes


def test_fixture_915_has_two_operations_in_progress_at_once() -> None:
    _, entries = read_replay(FIXTURES / "edgehog-915-two-operations-in-progress.jsonl")
    plan = build_replay_plan(entries)
    a, b = plan.operations
    assert a.device == b.device and b.start_us < a.end_us  # overlapping on one device
