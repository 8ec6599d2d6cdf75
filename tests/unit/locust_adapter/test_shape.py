"""The Locust shape: users (= devices online) follow `fleet.ramp`; -u/-r/-t honoured; the end of the plan ends it.

`shape_step` is pure and tested here; FleetShape.tick runs in a subprocess with a fake run time, a fake runner
and fake options, because importing locust monkey-patches gevent for the whole process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace

from simulator.generator.ramp import DEFAULT_SPAWN_RATE, SPAWN_LEAD_S, shape_step
from simulator.scenario.model import DeviceStage, FleetSpec, Scenario

RAMP = (DeviceStage(duration=4.0, devices=10), DeviceStage(duration=4.0, devices=20))
SC = Scenario(name="s", fleet=FleetSpec(devices=20, ramp=RAMP), duration=12.0)
END = 14.0  # play (12 s) + drain


def step(run_s: float, given: dict[str, object] | None = None, plan_s: float | None = None,
         sc: Scenario = SC) -> tuple[int, float] | None:
    return shape_step(sc, given or {}, run_s, run_s if plan_s is None else plan_s, END)


def test_users_follow_the_ramp_one_tick_ahead() -> None:
    assert SPAWN_LEAD_S == 1.0
    assert [step(t) for t in (0.0, 1.0, 3.0, 4.0, 6.0, 7.0, 8.0, 13.9)] == [
        (2, 2.5), (5, 2.5), (10, 2.5), (12, 2.5), (17, 2.5), (20, 2.5), (20, 2.5), (20, 2.5)]


def test_ends_after_the_plan_and_its_drain() -> None:
    assert step(13.99) is not None
    assert step(14.0) is None
    # The plan's own clock decides (it starts once the first devices are online, after the shape's).
    assert step(15.0, plan_s=13.0) == (20, 2.5)


def test_run_time_ends_it_instead_of_the_plan() -> None:
    assert step(5.0, {"run_time": 5}) is None
    assert step(4.9, {"run_time": 5}) == (14, 2.5)
    assert step(30.0, {"run_time": 60}) == (20, 2.5)  # past the plan's end: -t rules


def test_users_and_spawn_rate_given_are_honoured() -> None:
    assert step(7.0, {"users": 15, "spawn_rate": 100}) == (15, 100.0)
    assert step(0.0, {"users": 15}) == (2, 2.5)


def test_without_a_ramp_the_whole_fleet_at_once() -> None:
    flat = replace(SC, fleet=FleetSpec(devices=1000))
    assert step(0.0, sc=flat) == (1000, DEFAULT_SPAWN_RATE)
    assert step(0.0, {"users": 700, "spawn_rate": 100}, sc=flat) == (700, 100.0)
    assert step(0.0, sc=replace(SC, fleet=FleetSpec(devices=20))) == (20, 20.0)


TICK = """\
import json, types
from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.locustfile import FleetShape
from simulator.run.spec import RunSpec
from simulator.scenario.loader import load_scenario_text

sc = load_scenario_text('''name: s
fleet: {devices: 20, ramp: [{duration: 4s, devices: 10}, {duration: 4s, devices: 20}]}
duration: 12s
arrival: {model: constant, rate: 0.5}
lifecycle: {random: {outcomes: {success: 1}, download_duration: 1s, deploy_duration: 1s, reboot_duration: 1s}}
time_scale: 100
''')
env = types.SimpleNamespace()
ctx = FleetContext(environment=env, spec=RunSpec(scenario=sc))
env.fleetsim = ctx
# The lazy plan's end is exact once it is generated to its end (a fleet's cursor gets there as the run plays;
# before that the shape runs to the bound, duration + graceful_stop + drain).
bound = ctx.ensure_bounded().end_s
ctx.ensure_bounded().plan.cursor.finish()
assert bound == ctx.ensure_bounded().end_bound_s > ctx.ensure_bounded().end_s, (bound, ctx.ensure_bounded().end_s)
shape = FleetShape()
shape.runner = types.SimpleNamespace(environment=env)
now = [0.0]
shape.get_run_time = lambda: now[0]
out = {"use_common_options": FleetShape.use_common_options}
for given in ({}, {"users": 15, "spawn_rate": 50, "run_time": 6}):
    ctx.given = given
    ticks = []
    for t in (0.0, 3.0, 6.0, 13.0, 14.0, 20.0):
        now[0] = t
        ticks.append(shape.tick())
    out[json.dumps(given)] = ticks
print(json.dumps(out))
"""


def test_fleet_shape_tick_reads_the_context_and_the_given_options() -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(TICK)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["use_common_options"] is True
    # Plan: 12 s, last action before it (1 s operations at time_scale 100) -> ends at 12 + 2 s drain.
    assert out["{}"] == [[2, 2.5], [10, 2.5], [17, 2.5], [20, 2.5], None, None]
    assert out[json.dumps({"users": 15, "spawn_rate": 50, "run_time": 6})] == [
        [2, 50.0], [10, 50.0], None, None, None, None]
