"""Random and scripted operation plans: exact sequences, timings (device s / time_scale), properties after
reboot, determinism; script_check against the machine."""

from __future__ import annotations

import numpy as np

from simulator.events import ActionKind, OtaStatusCode, PlannedAction
from simulator.lifecycle.draws import draw_operation, operation_inputs
from simulator.lifecycle.plans import Firmware, OperationPlan, plan_random, plan_scripted
from simulator.lifecycle.script_check import check_script
from simulator.scenario.model import Distribution, RandomLifecycle, ScriptedLifecycle, ScriptedStep

OLD = Firmware("edgehog-os", "1.0.0", "b1")
NEW = Firmware("edgehog-os", "1.1.0", "b2")
U = "11111111-1111-4111-8111-111111111111"


def spec(outcome: str, **kw: object) -> RandomLifecycle:
    base: dict[str, object] = dict(outcomes=((outcome, 1.0),),
                                   download_duration=Distribution("fixed", value=10.0),
                                   deploy_duration=Distribution("fixed", value=20.0),
                                   reboot_duration=Distribution("fixed", value=15.0))
    base.update(kw)
    return RandomLifecycle(**base)  # type: ignore[arg-type]


def plan(outcome: str, seed: int = 1, time_scale: float = 1.0, **kw: object) -> OperationPlan:
    rng = np.random.default_rng(seed)
    return plan_random(3, spec(outcome, **kw), rng, U, 1_000_000, time_scale, OLD, NEW)


def events(p: OperationPlan) -> list[tuple[str, str, int, str]]:
    out = []
    for a in p.actions:
        if a.kind is ActionKind.PUBLISH:
            v = a.value
            assert isinstance(v, dict)
            out.append((v["requestUUID"], v["status"], v["statusProgress"], v["statusCode"]))
    return out


def statuses(p: OperationPlan) -> list[str]:
    return [f"{s} {pr}".rstrip(" 0") if s in ("Downloading", "Deploying") and pr else s
            for _, s, pr, _ in events(p)]


def props(p: OperationPlan) -> dict[tuple[str, str], object]:
    return {(a.interface.rsplit(".", 1)[1], a.path): a.value
            for a in p.actions if a.kind is ActionKind.PROPERTY}


def test_happy_path_is_exactly_the_runtime_success_sequence() -> None:
    p = plan("success")
    dl = [("Downloading", n) for n in range(0, 101, 10)]
    dp = [("Deploying", n) for n in range(0, 101, 10)]
    seq = [("Acknowledged", 0), *dl, *dp, ("Deployed", 0), ("Rebooting", 0), ("Success", 0)]
    assert [(s, pr) for _, s, pr, _ in events(p)] == seq
    assert all(u == U and c == "" for u, _, _, c in events(p))
    reboot = [a for a in p.actions if a.kind is ActionKind.REBOOT]
    assert len(reboot) == 1 and reboot[0].offset_us == 1_000_000 + 30_000_000
    assert reboot[0].duration_us == 15_000_000
    success = [a for a in p.actions if a.kind is ActionKind.PUBLISH][-1]
    assert success.offset_us == 1_000_000 + 45_000_000 == p.end_us
    assert props(p)[("BaseImage", "/version")] == "1.1.0" and props(p)[("OSInfo", "/osVersion")] == "1.1.0"
    assert props(p)[("BaseImage", "/buildId")] == "b2"
    assert p.firmware_after == NEW
    # Download progress every 1 s of a 10 s download, at device time / time_scale.
    first = [a.offset_us for a in p.actions if a.kind is ActionKind.PUBLISH][:4]
    assert first == [1_000_000, 1_000_000, 2_000_000, 3_000_000]


def test_slow_shutdown_repeats_rebooting_every_30_s_until_the_machine_goes_down() -> None:
    """mod.rs `wait_reboot`: Rebooting again every 30 s of device time while the machine stays up."""
    p = plan("success", shutdown_delay=Distribution("fixed", value=65.0))
    statuses = [s for _, s, _, _ in events(p)]
    assert statuses[-5:] == ["Deployed", "Rebooting", "Rebooting", "Rebooting", "Success"]
    rebooting = [a.offset_us for a in p.actions if a.kind is ActionKind.PUBLISH
                 and isinstance(a.value, dict) and a.value["status"] == "Rebooting"]
    assert rebooting == [31_000_000, 61_000_000, 91_000_000]  # Deployed at 1 s + 10 s + 20 s = 31 s
    reboot = [a for a in p.actions if a.kind is ActionKind.REBOOT]
    assert [r.offset_us for r in reboot] == [31_000_000 + 65_000_000] and reboot[0].duration_us == 15_000_000
    assert p.end_us == 31_000_000 + 65_000_000 + 15_000_000
    # A shutdown of exactly 30 s goes down at the instant the tick would fire: no second Rebooting.
    once = plan("success", shutdown_delay=Distribution("fixed", value=30.0))
    assert [s for _, s, _, _ in events(once)].count("Rebooting") == 1
    # Unset, nothing is drawn for it: the same draws as before the option existed.
    a = draw_operation(spec("success"), np.random.default_rng(4))
    b = draw_operation(spec("success", shutdown_delay=Distribution("fixed", value=0.0)), np.random.default_rng(4))
    assert a == b and a.shutdown == 0.0


def test_time_scale_divides_device_time() -> None:
    p = plan("success", time_scale=60.0)
    assert p.end_us == 1_000_000 + round(45 * 1e6 / 60)


def test_streaming_has_no_downloading() -> None:
    p = plan("success", streaming=True)
    assert not any(s == "Downloading" for _, s, _, _ in events(p))
    assert [s for _, s, _, _ in events(p)][:2] == ["Acknowledged", "Deploying"]


def test_rollback_fails_with_system_rollback_and_republishes_old_image() -> None:
    p = plan("rollback")
    assert events(p)[-1] == (U, "Failure", 0, "SystemRollback")
    assert props(p)[("BaseImage", "/version")] == "1.0.0" and p.firmware_after == OLD
    assert any(a.kind is ActionKind.REBOOT for a in p.actions)


def test_cancel_ends_with_canceled_during_download() -> None:
    for seed in range(10):
        p = plan("cancel", seed=seed)
        ev = events(p)
        assert ev[-1] == (U, "Failure", 0, "Canceled")
        assert {s for _, s, _, _ in ev[:-1]} <= {"Acknowledged", "Downloading", "Error"}
        assert not any(a.kind is ActionKind.REBOOT for a in p.actions)


def test_late_cancel_publishes_nothing_and_update_succeeds() -> None:
    p = plan("late_cancel")
    assert events(p)[-1][1] == "Success" and not any(c == "Canceled" for *_, c in events(p))


def test_five_attempts_then_internal_error_with_backoff() -> None:
    p = plan("download_exhausted", error_codes=(("IOError", 1.0),))
    ev = events(p)
    errors = [a for a in p.actions if a.kind is ActionKind.PUBLISH and a.value["status"] == "Error"]  # type: ignore[index]
    assert [e[3] for e in ev if e[1] == "Error"] == ["IOError"] * 5
    assert ev[-1] == (U, "Failure", 0, "InternalError")
    final = [a for a in p.actions if a.kind is ActionKind.PUBLISH][-1]
    assert final.offset_us - errors[-1].offset_us == 32_000_000  # the last sleep: 2^5 s
    assert [e.occurrence for e in errors] == [0, 1, 2, 3, 4]  # same (uuid, status, progress): occurrences


def test_download_errors_are_retried_then_succeed() -> None:
    p = plan("success", download_error_probability=0.999, seed=1)
    ev = events(p)
    assert [e[1] for e in ev].count("Error") == 4  # at most 4 failures when the outcome is not exhaustion
    assert ev[-1][1] == "Success"


def test_double_update_refused_for_new_uuid_while_first_continues() -> None:
    p = plan("success", double_update_probability=1.0)
    ev = events(p)
    refused = [e for e in ev if e[3] == "UpdateAlreadyInProgress"]
    assert len(refused) == 1 and refused[0][0] != U and refused[0][1] == "Failure"
    assert ev[-1] == (U, "Success", 0, "")


def test_each_outcome_plays_through_the_machine() -> None:
    for outcome, last in [("invalid_base_image", "InvalidBaseImage"), ("io_error", "IOError"),
                          ("reboot_failure", "InternalError")]:
        p = plan(outcome, double_update_probability=0.5)
        assert events(p)[-1][1:] == ("Failure", 0, last), outcome


def test_draws_are_deterministic_and_fixed_length() -> None:
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    assert draw_operation(spec("success"), a) == draw_operation(spec("success"), b)
    draw_operation(spec("cancel", streaming=True), a)
    draw_operation(spec("download_exhausted"), b)
    assert a.random() == b.random()  # every outcome consumes the same number of values


def test_live_inputs_skip_requests_and_ack_delay() -> None:
    d = draw_operation(spec("cancel", acknowledge_delay=Distribution("fixed", value=5.0)),
                       np.random.default_rng(1))
    timed = operation_inputs(d, U, 0, 1.0, live=True)
    kinds = [type(i).__name__ for _, i in timed]
    assert "UpdateRequested" not in kinds and "CancelRequested" not in kinds
    assert timed[0][0] == 0 and kinds[-1] == "BootedNew"


def steps(*items: tuple[str, int, str]) -> ScriptedLifecycle:
    return ScriptedLifecycle(tuple(ScriptedStep(s, p, c, delay=1.0, line=10 + i)
                                   for i, (s, p, c) in enumerate(items)),
                             reboot_duration=5.0)


HAPPY = steps(("Acknowledged", 0, ""), ("Downloading", 0, ""), ("Downloading", 50, ""),
              ("Downloading", 100, ""),
              ("Deploying", 0, ""), ("Deploying", 100, ""), ("Deployed", 0, ""), ("Rebooting", 0, ""),
              ("Success", 0, ""))


def test_scripted_plan_publishes_steps_and_reboots() -> None:
    assert check_script(HAPPY) == []
    p = plan_scripted(0, HAPPY, U, 0, 2.0, OLD, NEW)
    pubs = [a for a in p.actions if a.kind is ActionKind.PUBLISH]
    # 1 s steps at time_scale 2; Success 1 s (0.5 s wall) after the 5 s (2.5 s wall) reboot.
    assert [a.offset_us for a in pubs] == [500_000 * k for k in range(1, 9)] + [7_000_000]
    reboot: list[PlannedAction] = [a for a in p.actions if a.kind is ActionKind.REBOOT]
    assert reboot[0].offset_us == 4_000_000 and reboot[0].duration_us == 2_500_000
    assert props(p)[("BaseImage", "/version")] == "1.1.0"


def test_script_check_refuses_what_the_runtime_cannot_publish() -> None:
    bad = steps(("Acknowledged", 0, ""), ("Downloading", 0, ""), ("Deployed", 0, ""))
    assert check_script(bad) and check_script(bad)[0][0] == 2
    small = steps(("Acknowledged", 0, ""), ("Downloading", 0, ""), ("Downloading", 5, ""))
    assert check_script(small)[0][0] == 2
    assert check_script(steps(("Downloading", 0, "")))[0][0] == 0
    late = steps(("Acknowledged", 0, ""), ("Downloading", 0, ""), ("Downloading", 100, ""),
                 ("Deploying", 0, ""),
                 ("Failure", 0, "Canceled"))
    assert "nothing" in check_script(late)[0][1]
    wrong_code = steps(("Acknowledged", 0, ""), ("Downloading", 0, ""), ("Error", 0, "Canceled"))
    assert check_script(wrong_code)[0][0] == 2
    unknown = steps(("Acknowledged", 0, ""), ("Exploded", 0, ""))
    assert "unknown status" in check_script(unknown)[0][1]


def test_script_check_accepts_failure_paths() -> None:
    errors = [("Error", 0, "NetworkError")] * 5
    exhausted = steps(("Acknowledged", 0, ""), ("Downloading", 0, ""), *errors,
                      ("Failure", 0, "InternalError"))
    assert check_script(exhausted) == []
    rollback = steps(*[(st.status, st.progress, st.code) for st in HAPPY.steps[:-1]],
                     ("Rebooting", 0, ""), ("Failure", 0, str(OtaStatusCode.SYSTEM_ROLLBACK)))
    assert check_script(rollback) == []
    p = plan_scripted(0, rollback, U, 0, 1.0, OLD, NEW)
    assert props(p)[("BaseImage", "/version")] == "1.0.0"
    assert sum(1 for a in p.actions if a.kind is ActionKind.REBOOT) == 1
