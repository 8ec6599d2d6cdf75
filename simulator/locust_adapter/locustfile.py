"""The locustfile body (the repository's locustfile.py re-exports it; `locust -f` accepts this module too)."""

from __future__ import annotations

from typing import Any

from locust import events

from simulator.locust_adapter.hooks import install_from_options
from simulator.locust_adapter.live import live_rows
from simulator.locust_adapter.options import add_options
from simulator.locust_adapter.users import DeviceUser
from simulator.locust_adapter.web import install_web_tab

__all__ = ["DeviceUser"]


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    ctx = install_from_options(environment)
    if ctx is not None:
        install_web_tab(environment, lambda: live_rows(ctx))
