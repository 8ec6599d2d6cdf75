"""A worker that is slow to register fleetsim's handlers still gets the run's spec (distributed runs).

The bug (seen in tests/integration/engine/test_distributed.py on a loaded 2-core machine): a Locust worker is
connected -- the master counts it -- while its `WorkerRunner` constructor waits for the master's ack, before
fleetsim's hooks register `fleetsim_setup`; the master started as soon as every worker was connected, its
spec reached the late worker first ("Unknown message type received: fleetsim_setup"), and that worker's
devices failed with "this worker has not received the run's spec". Now a worker says `fleetsim_ready` once its
handlers are registered, and `await_workers` waits for that too.

A real Locust master and a real worker runner over ZMQ on loopback, in one subprocess (importing locust
monkey-patches gevent): the worker connects, then takes WORKER_DELAY_S before installing fleetsim's hooks, as
a loaded worker would; await_workers must return only after that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCENARIO = """\
name: ready
realm: fleetsim
seed: 5
fleet: {devices: 2, id_scheme: sequential, id_prefix: ready}
duration: 5s
transport: lean
arrival: {model: constant, rate: 1}
lifecycle:
  mix:
    - weight: 1
      scripted:
        steps:
          - {status: Acknowledged}
"""

SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sys, time
    import gevent
    from locust.env import Environment
    from simulator.errors import FleetsimError
    from simulator.locust_adapter.hooks import install
    from simulator.locust_adapter.master_procs import await_workers
    from simulator.locust_adapter.users import DeviceUser
    from simulator.run.spec import RunSpec
    from simulator.scenario.loader import load_scenario_text

    WORKER_DELAY_S = 1.0
    spec = RunSpec(scenario=load_scenario_text(sys.stdin.read()))
    master_env = Environment(user_classes=[DeviceUser])
    master = master_env.create_master_runner("127.0.0.1", 0)
    ctx = install(master_env, spec)
    marks = {}

    # Bounded wait before the worker exists: a worker that never says it is ready is a clear error.
    try:
        await_workers(master, 1, [], 0.3, ctx.ready_workers)
        marks["timeout_error"] = ""
    except FleetsimError as exc:
        marks["timeout_error"] = str(exc)

    def worker():
        env = Environment(user_classes=[DeviceUser])
        env.create_worker_runner("127.0.0.1", master.server.port)
        marks["connected"] = time.monotonic()
        gevent.sleep(WORKER_DELAY_S)  # sleep-ok: stands for a loaded worker between connect and its hooks
        marks["installed"] = time.monotonic()
        install(env, None)

    def wait():
        await_workers(master, 1, [], 30.0, ctx.ready_workers)
        marks["released"] = time.monotonic()

    gevent.joinall([gevent.spawn(worker), gevent.spawn(wait)], raise_error=True, timeout=60)
    print(json.dumps({"timeout_error": marks["timeout_error"],
                      "connected_before_release": marks["released"] - marks["connected"],
                      "released_after_install": marks["released"] >= marks["installed"],
                      "ready": len(ctx.ready_workers)}))
    master.quit()
""")


def test_the_master_waits_for_the_worker_to_register_its_handlers() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], input=SCENARIO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["timeout_error"] == "only 0 of 1 workers connected (0 ready) within 0.3 s"
    assert out["ready"] == 1
    # Connected a second before its hooks: the master waited for them, not for the connection alone.
    assert out["released_after_install"]
    assert out["connected_before_release"] >= 0.9
