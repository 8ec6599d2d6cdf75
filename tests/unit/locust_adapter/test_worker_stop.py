"""A worker stopped early (Ctrl-C, master stop) sends its final without generating the rest of the plan
(issue 14): it used to evaluate the whole plan's cut and digest there, on the greenlet that reads the master's
messages (minutes of CPU for a 10 M-event plan), and the master marked it missing. Its final carries the cut of
what it generated and the digest of its plan's first steps, which the master's whole plan agrees with.

Runs in a subprocess: importing locust monkey-patches gevent for the whole process (as tests/unit/locust_adapter/
test_shape.py). The fake worker runner only records the message it would send.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

STOP = """\
import json, sys, tempfile, types
from locust.runners import WorkerRunner
from simulator.locust_adapter import hooks
from simulator.locust_adapter.context import FleetContext
from simulator.metrics.books import RunBooks
from simulator.run.spec import RunSpec
from simulator.scenario.loader import load_scenario_text

sc = load_scenario_text('''name: s
fleet: {devices: 8}
duration: 1h
graceful_stop: 0s
arrival: {model: constant, rate: 1}
lifecycle: {random: {outcomes: {success: 1}, download_duration: 20s, deploy_duration: 5s, reboot_duration: 5s}}
''')


class Worker(WorkerRunner):
    def __init__(self) -> None:
        self.sent = []

    def send_message(self, name, data=None, client_id=None):
        self.sent.append((name, data))


runner = Worker()
ctx = FleetContext(environment=types.SimpleNamespace(runner=runner), spec=RunSpec(scenario=sc))
cursor = ctx.ensure_bounded().plan.cursor
cursor.keep(range(0, 8, 2))
cursor.advance(60_000_000)  # the worker played a minute of the hour
before = (cursor.steps_done, cursor.horizon_us, cursor.done)
recorder = ctx.ensure_recorder()
recorder.books = RunBooks(tempfile.mkdtemp(), recorder.start, join=False)
ctx.live = types.SimpleNamespace(pump=None)
hooks._on_test_stop(ctx)
after = (cursor.steps_done, cursor.horizon_us, cursor.done)
[(name, final)] = runner.sent
master = RunSpec(scenario=sc).bounded_plan().plan.cursor
master.finish()
print(json.dumps({"before": before, "after": after, "name": name, "steps": final["plan_steps"],
                  "whole": final["plan_whole"], "funnel": "funnel" in final["books"],
                  "agrees": master.digest_agrees(final["plan_steps"], final["plan_digest"], final["plan_whole"]),
                  "master_steps": master.steps_done}))
"""


def test_an_early_stop_sends_the_final_from_what_was_generated() -> None:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(STOP)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["name"] == "fleetsim_final" and out["funnel"]
    assert out["after"] == out["before"] and out["before"][2] is False  # not one more step generated
    steps = out["before"][0]
    assert out["whole"] is False and steps // 2 < out["steps"] <= steps < out["master_steps"]
    assert out["agrees"] is True
