"""The locustfile body (the repository's locustfile.py re-exports it; `locust -f` accepts this module too).

Plain Locust runs get the same books as `fleetsim run`: the fleetsim web tab while running, and results written
(results/<ts>-<scenario>/) by the local or master process when Locust quits.
"""

from __future__ import annotations

import time
from typing import Any

from locust import events

from simulator.locust_adapter.context import FleetContext
from simulator.locust_adapter.hooks import install_from_options
from simulator.locust_adapter.live import LiveDelivery, live_rows
from simulator.locust_adapter.options import add_options
from simulator.locust_adapter.session import finish_locust_run
from simulator.locust_adapter.shape import FleetShape
from simulator.locust_adapter.telemetry_hook import TelemetryOptions, TelemetryRun, start_telemetry
from simulator.locust_adapter.users import DeviceUser
from simulator.locust_adapter.web import install_web_tab

__all__ = ["DeviceUser", "FleetShape"]

_started: dict[int, float] = {}


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any, **_: Any) -> None:
    add_options(parser)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _init(environment: Any, **_: Any) -> None:
    ctx = install_from_options(environment)
    if ctx is None or type(environment.runner).__name__ == "WorkerRunner":
        return
    delivery = LiveDelivery(ctx.settings.target.control_url)
    options = environment.parsed_options
    telemetry = start_telemetry(ctx, TelemetryOptions(
        metrics_listen=str(getattr(options, "fleetsim_metrics_port", "") or ""),
        otlp_endpoint=str(getattr(options, "fleetsim_otlp", "") or "")), delivery)
    delivery.start()
    install_web_tab(environment, lambda: live_rows(ctx, delivery))
    environment.events.test_start.add_listener(lambda **kw: _started.__setitem__(id(ctx), time.time()))
    environment.events.quitting.add_listener(lambda **kw: _finish(ctx, delivery, telemetry))


def _finish(ctx: FleetContext, delivery: LiveDelivery, telemetry: TelemetryRun | None) -> None:
    delivery.stop()
    if telemetry is not None:
        telemetry.stop()
    if id(ctx) in _started:
        finish_locust_run(ctx, started_fallback=_started[id(ctx)])
