"""The load shape of plain `locust -f locustfile.py`: users (= devices) follow the scenario's `fleet.ramp`.

Each Locust user is a virtual device, so the shape's user count is the number of devices online; OTA
operations still come from the plan's open-model arrivals (no per-user wait_time). `use_common_options`: -u caps
the users (and, as without a shape, sets the fleet size unless --fleetsim-devices does), -r sets the spawn rate,
-t ends the test (Locust itself does not enforce -t while a shape runs headless). Without -t the shape ends the
test at the bounded plan's end (duration, graceful stop, drain), as `fleetsim run` does.
"""

from __future__ import annotations

from locust import LoadTestShape
from locust.runners import MasterRunner

from simulator.generator.fleet import LOOKAHEAD_US
from simulator.generator.plan_pace import advance_plan
from simulator.generator.ramp import shape_step
from simulator.locust_adapter.context import FleetContext

__all__ = ["FleetShape"]


class FleetShape(LoadTestShape):
    """Devices online following `fleet.ramp` (all at once without one); ends at -t or the plan's end."""

    use_common_options = True

    def _context(self) -> FleetContext | None:
        ctx = getattr(getattr(self.runner, "environment", None), "fleetsim", None)
        return ctx if isinstance(ctx, FleetContext) and ctx.spec is not None else None

    def tick(self) -> tuple[int, float] | None:
        ctx = self._context()
        if ctx is None:  # fleetsim did not install (no parsed options): nothing to shape
            return None
        run_s = float(self.get_run_time())  # type: ignore[no-untyped-call]
        fleet = ctx.fleet
        # The plan's clock starts when this process's first devices are online; a master has no fleet and
        # uses its own time (it then ends the test early by the workers' onboarding time).
        if fleet is None:
            plan_s = run_s
            # A master's cursor keeps no actions: advancing it as the run goes makes the plan's end exact
            # before the bound (BoundedPlan.end_s) instead of generating the whole plan at the end.
            master = isinstance(getattr(ctx.environment, "runner", None), MasterRunner)
            if master and not ctx.require_spec().scenario.answers_requests:
                # In slices (issue 14): a catch-up in one go held the master's loop, and its heartbeats, >= 1 s.
                advance_plan(ctx.ensure_bounded().plan.cursor, round(plan_s * 1e6) + LOOKAHEAD_US)
        elif fleet.started.is_set():
            plan_s = fleet.clock.monotonic() - fleet.run_start
        else:
            plan_s = 0.0
        return shape_step(ctx.require_spec().scenario, ctx.given, run_s, plan_s, ctx.ensure_bounded().end_s)
