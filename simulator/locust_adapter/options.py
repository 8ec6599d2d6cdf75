"""fleetsim's Locust options, registered through `init_command_line_parser` (each also a FLEETSIM_* env var).

Locust's configargparse reads `env_var=` itself, so `FLEETSIM_SCENARIO=... locust -f locustfile.py` works.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_BACKEND_INFO", "add_options"]

# Where `fleetsim backend` writes what a client needs (simulator/backend/app.py).
DEFAULT_BACKEND_INFO = ".fleetsim/backend/backend.json"


def add_options(parser: Any) -> None:
    group = parser.add_argument_group("fleetsim", "Edgehog OTA fleet options (fleetsim)")
    group.add_argument("--fleetsim-scenario", env_var="FLEETSIM_SCENARIO", default="scenarios/quickstart.yaml",
                       help="scenario YAML (fleet, lifecycles, arrivals, seed)")
    group.add_argument("--fleetsim-backend-info", env_var="FLEETSIM_BACKEND_INFO", default=DEFAULT_BACKEND_INFO,
                       help="target info JSON: `fleetsim backend` writes <state-dir>/backend.json")
    group.add_argument("--fleetsim-target-file", env_var="FLEETSIM_TARGET_FILE", default="",
                       help="a real Astarte target file instead of the embedded backend")
    group.add_argument("--fleetsim-seed", env_var="FLEETSIM_SEED", type=int, default=None,
                       help="override the scenario's seed")
    group.add_argument("--fleetsim-devices", env_var="FLEETSIM_DEVICES", type=int, default=None,
                       help="fleet size (default: the user count -u when run by plain locust)")
    group.add_argument("--fleetsim-transport", env_var="FLEETSIM_TRANSPORT", default=None,
                       choices=["lean", "sdk"], help="override the scenario's transport")
    group.add_argument("--fleetsim-results", env_var="FLEETSIM_RESULTS", default="results",
                       help="directory for run results (results/<UTC timestamp>-<scenario>/)")
    group.add_argument("--fleetsim-allow-incomplete", env_var="FLEETSIM_ALLOW_INCOMPLETE", action="store_true",
                       default=False, help="exit 0 on an incomplete verdict (as fleetsim run --allow-incomplete)")
    group.add_argument("--fleetsim-workers", env_var="FLEETSIM_WORKERS", type=int, default=0,
                       help="worker count for device partitioning (sent by the master; set for --processes)")
    group.add_argument("--fleetsim-metrics-port", env_var="FLEETSIM_METRICS_PORT", default="",
                       help="live Prometheus metrics on PORT or HOST:PORT (host default 127.0.0.1), on the "
                            "master or local process, merged across workers (docs/telemetry.md)")
    group.add_argument("--fleetsim-otlp", env_var="FLEETSIM_OTLP", default="",
                       help="push the same metrics over OTLP/HTTP to this endpoint (extra 'otlp')")
