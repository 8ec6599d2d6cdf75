"""A worker builds a large plan without stopping its gevent loop (distributed runs with ~40k+ planned events).

The bug: each worker built the whole plan on its gevent loop at test start (~2 s of CPU for 60k events on a
quiet core, more on a loaded one). Locust's worker heartbeat greenlet could not run meanwhile; the master marks
a worker missing after 3 missed 1 s heartbeats (locust.runners HEARTBEAT_LIVENESS x HEARTBEAT_INTERVAL) and,
with every worker missing, stops the test: no device ever came online. Now the plan is built in a native
thread when the master's spec arrives (hooks._on_setup), and the loop keeps running; since the plan became
lazy (simulator.plan_cursor) building it is only its recipe, and it is generated a look-ahead at a time.

Runs in a subprocess: importing locust monkey-patches gevent for the whole process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# 200 devices, ~60k planned OTAEvents: the size that never came online with --processes 2.
SCENARIO = """\
name: big-plan
realm: fleetsim
seed: 5
fleet: {devices: 200, id_scheme: sequential, id_prefix: big}
duration: 15s
transport: lean
arrival: {model: constant, rate: 3000}
lifecycle:
  mix:
    - weight: 1
      name: ack-then-failure
      scripted:
        steps:
          - {status: Acknowledged}
          - {status: Failure, code: Canceled, delay: 100ms}
"""

SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sys
    import gevent
    from gevent.event import Event
    from simulator.locust_adapter.context import FleetContext
    from simulator.locust_adapter.hooks import _on_setup
    from simulator.run.plans import bound_plan, plan_for
    from simulator.generator.target import TargetInfo
    from simulator.run.spec import RunSpec
    from simulator.scenario.loader import load_scenario_text

    scenario = load_scenario_text(sys.stdin.read())
    # The master ships its spec with the target open; this one is never connected to (no spawn here).
    target = TargetInfo(kind="embedded", realm="fleetsim", pairing_url="https://127.0.0.1:1/pairing",
                        agent_jwt="jwt", ca_file="ca.crt")
    ctx = FleetContext(environment=None, spec=None)
    done = Event()
    beats_during_build = []

    def heartbeat():  # stands for Locust's worker heartbeat greenlet: it must run while the plan builds
        while not done.is_set():
            beats_during_build.append(ctx.bounded is None)
            gevent.sleep(0.05)  # sleep-ok: a heartbeat-like greenlet ticking, not a wait for logic

    def setup():  # the fleetsim_setup message handler, as the worker's message greenlet calls it
        _on_setup(ctx, {"spec": RunSpec(scenario=scenario).with_target(target).to_json(), "worker_count": 2})
        done.set()

    gevent.joinall([gevent.spawn(setup), gevent.spawn(heartbeat)], raise_error=True)
    expected = bound_plan(plan_for(scenario), scenario.duration, scenario.graceful_stop)
    print(json.dumps({
        "beats_during_build": sum(beats_during_build),
        "built": ctx.bounded is not None,
        "digest_matches": ctx.bounded is not None and ctx.bounded.digest == expected.digest,
        "events": ctx.bounded.plan.totals.actions if ctx.bounded else 0,  # one pass (the plan is lazy)
        "worker_count": ctx.worker_count,
    }))
""")


def test_worker_builds_a_large_plan_while_its_loop_keeps_running() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], input=SCENARIO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["built"], "the worker builds its plan when the master's spec arrives, before the first spawn"
    assert out["digest_matches"], "the worker's plan is the master's, byte for byte"
    assert out["events"] >= 40_000  # the plan is of the size that used to block the loop
    assert out["worker_count"] == 2
    # The heartbeat greenlet ran while the plan was being built (a build on the loop lets it run only after).
    assert out["beats_during_build"] >= 1
