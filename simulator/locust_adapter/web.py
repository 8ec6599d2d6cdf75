"""A "fleetsim" tab in Locust's web UI: end-to-end delivery and accounting while the test runs.

Uses Locust's extension points (template_args extended_tabs/extended_tables, and extra rows added to the
/stats/requests JSON as `extended_stats`; see locust examples/extend_web_ui.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["install_web_tab"]

TAB_KEY = "fleetsim"


def install_web_tab(environment: Any, rows: Callable[[], list[dict[str, Any]]]) -> None:
    web_ui = environment.web_ui
    if web_ui is None:
        return
    web_ui.template_args["extended_tabs"] = [{"title": "fleetsim", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{
        "key": TAB_KEY,
        "structure": [{"key": "name", "title": "Metric"}, {"key": "value", "title": "Value"}],
    }]

    from flask import request

    @web_ui.app.after_request  # type: ignore[untyped-decorator]
    def _extend(response: Any) -> Any:
        if request.path != "/stats/requests" or response.json is None:
            return response
        body = dict(response.json)
        body["extended_stats"] = [{"key": TAB_KEY, "data": rows()}]
        response.set_data(json.dumps(body))
        return response
