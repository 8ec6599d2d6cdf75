"""The embedded backend's control and metrics endpoint (plain HTTP on loopback, stdlib threaded server).

GET  /healthz            "ok"
GET  /metrics            Prometheus text exposition format 0.0.4 (collector counters), for humans and scrapers
GET  /stats              JSON: the same counters (Collector.stats()), for fleetsim's own processes
POST /runs/mark        JSON {"label": "..."} (optional) -> {"cursor", "at", "label"}: where a run begins in the
                         arrival log (Collector.mark); the generator joins only rows from `cursor` (the run fence)
POST /drop               JSON {"rules": [{"device_id", "status", "request_uuid"}]}: drop matching OTAEvents on purpose
GET  /devices/<id>/properties  JSON: the device's last device-owned property values, by interface
GET  /arrivals?since=N   CSV, header simulator.records.ARRIVAL_LOG_HEADER, arrival-log rows from index N (a cursor:
                         at most &limit=M rows, default PAGE_ROWS; read again from N + rows received);
                         with &format=json: {"columns": [header], "rows": [[cells as strings]]}, the same cells
GET  /violations         JSON {"counts": {...}, "examples": [...], "divergences": {...}}
POST /campaigns          JSON CampaignSpec (simulator.backend.campaign) -> 201 {"id": "c1"}; 400 on a bad spec
GET  /campaigns          JSON {"ids": [...]}
GET  /campaigns/<id>     JSON campaign report; 404 if unknown
POST /campaigns/<id>/cancel  JSON {"device": id} -> the campaign sends that device a Cancel request
POST /broker/restart     JSON {"down_s": 0.5} -> broker stopped, down that long, restarted on the same port;
                         200 {"port", "down_s", "stopped_at", "started_at"}; 404 when not wired (issue 9)
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from simulator.backend.campaign_runner import CampaignManager
from simulator.backend.collector import Collector
from simulator.errors import ConfigErrors
from simulator.records import ARRIVAL_LOG_HEADER, ArrivalRecord

__all__ = ["ControlServer", "render_metrics"]

# Arrivals per /arrivals page at most: a reader far behind (a long-lived backend) pages instead of making the
# collector read its whole on-disk log into memory at once (~100 bytes a row in JSON).
PAGE_ROWS = 100_000
_MAX_BODY = 16 * 1024 * 1024  # bytes; a 100k-device campaign spec is ~3 MB


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(stats: dict[str, Any]) -> str:
    """Collector.stats() as Prometheus text; metric names are fleetsim_collector_*."""
    lines = [
        "# HELP fleetsim_collector_messages_total MQTT messages seen by the collector, by kind.",
        "# TYPE fleetsim_collector_messages_total counter",
    ]
    lines += [f'fleetsim_collector_messages_total{{kind="{_label(k)}"}} {n}'
              for k, n in sorted(stats["messages"].items())]
    lines += [
        "# HELP fleetsim_collector_arrivals_total OTAEvents recorded in the arrival log.",
        "# TYPE fleetsim_collector_arrivals_total counter",
        f"fleetsim_collector_arrivals_total {stats['arrivals']}",
        "# HELP fleetsim_collector_dropped_total OTAEvents discarded on purpose by the drop hook.",
        "# TYPE fleetsim_collector_dropped_total counter",
        f"fleetsim_collector_dropped_total {stats['dropped']}",
        "# HELP fleetsim_collector_violations_total Protocol violations, by kind.",
        "# TYPE fleetsim_collector_violations_total counter",
    ]
    lines += [f'fleetsim_collector_violations_total{{kind="{_label(k)}"}} {n}'
              for k, n in sorted(stats["violations"].items())]
    lines += [
        "# HELP fleetsim_collector_divergences_total Tolerated deviations from the spec, by kind.",
        "# TYPE fleetsim_collector_divergences_total counter",
    ]
    lines += [f'fleetsim_collector_divergences_total{{kind="{_label(k)}"}} {n}'
              for k, n in sorted(stats["divergences"].items())]
    lines += [
        "# HELP fleetsim_collector_delivered_total Messages by interface (or kind) and delivered QoS.",
        "# TYPE fleetsim_collector_delivered_total counter",
    ]
    for key, n in sorted(stats["qos_delivered"].items()):
        name, _, qos = key.rpartition("|")
        lines.append(f'fleetsim_collector_delivered_total{{interface="{_label(name)}",qos="{qos}"}} {n}')
    lines += [
        "# HELP fleetsim_collector_devices_seen Distinct devices that published at least one message.",
        "# TYPE fleetsim_collector_devices_seen gauge",
        f"fleetsim_collector_devices_seen {stats['devices_seen']}",
        "# HELP fleetsim_collector_handler_seconds_mean Mean collector time per message (validate + record).",
        "# TYPE fleetsim_collector_handler_seconds_mean gauge",
        f"fleetsim_collector_handler_seconds_mean {stats['handler_us_mean'] / 1e6:.9f}",
    ]
    return "\n".join(lines) + "\n"


class ControlServer:
    """HTTP endpoint over a Collector (and a CampaignManager, created on the collector when not given)."""

    def __init__(
        self,
        collector: Collector,
        host: str = "127.0.0.1",
        port: int = 0,
        campaigns: CampaignManager | None = None,
    ) -> None:
        self.collector = collector
        self.campaigns = campaigns if campaigns is not None else CampaignManager(collector)
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Set by EmbeddedBackend (server.py): restarts the broker on its port; None => the route answers 404.
        self.broker_restart: Callable[[float], dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            return ""
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> str:
        """Bind (port 0 = ephemeral), serve on a thread, return the base URL."""
        if self._server is not None:
            return self.url
        server = ThreadingHTTPServer((self._host, self._port), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fleetsim-control", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, close the socket, stop campaign timers. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.campaigns.stop_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "fleetsim-control/1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: requests are not news

            def do_GET(self) -> None:
                owner._get(self)

            def do_POST(self) -> None:
                owner._post(self)

        return Handler

    # -- routes --------------------------------------------------------------------------------------------

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: str, ctype: str) -> None:
        data = body.encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _json(self, h: BaseHTTPRequestHandler, status: int, obj: object) -> None:
        self._send(h, status, json.dumps(obj, default=str), "application/json")

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = parts.path.rstrip("/") or "/"
        if path == "/healthz":
            self._send(h, 200, "ok\n", "text/plain")
        elif path == "/metrics":
            self._send(h, 200, render_metrics(self.collector.stats()), "text/plain; version=0.0.4")
        elif path == "/stats":
            self._json(h, 200, self.collector.stats())
        elif path == "/arrivals":
            query = parse_qs(parts.query)
            raw = query.get("since", ["0"])[0]
            raw_limit = query.get("limit", [str(PAGE_ROWS)])[0]
            for name, value in (("since", raw), ("limit", raw_limit)):
                if not value.isdigit():
                    self._json(h, 400, {"error": f"{name}: expected a non-negative integer, got {value!r}"})
                    return
            page = self.collector.arrivals(int(raw), int(raw_limit))
            if query.get("format", ["csv"])[0] == "json":
                rows = [list(self._arrival_cells(r)) for r in page]
                self._json(h, 200, {"columns": list(ARRIVAL_LOG_HEADER), "rows": rows})
                return
            self._send(h, 200, self._arrivals_csv(page), "text/csv")
        elif path.startswith("/devices/") and path.endswith("/properties"):
            device = path[len("/devices/"):-len("/properties")]
            self._json(h, 200, {"device_id": device, "properties": self.collector.properties(device)})
        elif path == "/violations":
            stats = self.collector.stats()
            self._json(h, 200, {"counts": stats["violations"], "divergences": stats["divergences"],
                                "examples": self.collector.violation_examples()})
        elif path == "/campaigns":
            self._json(h, 200, {"ids": self.campaigns.ids()})
        elif path.startswith("/campaigns/"):
            report = self.campaigns.status(path.split("/")[2])
            if report is None:
                self._json(h, 404, {"error": f"no campaign {path.split('/')[2]!r}"})
            else:
                self._json(h, 200, report)
        else:
            self._json(h, 404, {"error": f"no route GET {path}"})

    @staticmethod
    def _arrival_cells(r: ArrivalRecord) -> tuple[str, ...]:
        device, uuid, status, progress, occurrence = r.key
        return (device, uuid, status, str(progress), str(occurrence), f"{r.arrival:.6f}",
                "" if r.t_ms is None else str(r.t_ms), str(r.qos), r.code)

    def _arrivals_csv(self, page: list[ArrivalRecord]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(ARRIVAL_LOG_HEADER)
        for r in page:
            writer.writerow(self._arrival_cells(r))
        return out.getvalue()

    def _read_json(self, h: BaseHTTPRequestHandler) -> Any:
        length = int(h.headers.get("Content-Length") or 0)
        if length <= 0 or length > _MAX_BODY:
            raise ValueError(f"body: expected 1..{_MAX_BODY} bytes of JSON, got {length}")
        return json.loads(h.rfile.read(length))

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path.rstrip("/")
        segments = path.split("/")
        try:
            body = self._read_json(h)
        except (ValueError, UnicodeDecodeError) as exc:
            self._json(h, 400, {"error": f"invalid JSON body: {exc}"})
            return
        if path == "/campaigns":
            try:
                campaign_id = self.campaigns.create_from_json(body)
            except ConfigErrors as exc:
                self._json(h, 400, {"errors": [str(e) for e in exc.errors]})
                return
            self._json(h, HTTPStatus.CREATED, {"id": campaign_id})
        elif len(segments) == 4 and segments[1] == "campaigns" and segments[3] == "cancel":
            runner = self.campaigns.get(segments[2])
            device = body.get("device") if isinstance(body, dict) else None
            if runner is None or not isinstance(device, str):
                self._json(h, 404 if runner is None else 400, {"error": "unknown campaign or missing device"})
                return
            runner.cancel(device)
            self._json(h, 200, {"id": segments[2], "canceled": device})
        elif path == "/runs/mark":
            label = body.get("label", "") if isinstance(body, dict) else ""
            mark = self.collector.mark(label if isinstance(label, str) else "")
            self._json(h, 200, {"cursor": mark.cursor, "at": mark.at, "label": mark.label})
        elif path == "/drop":
            rules = body.get("rules") if isinstance(body, dict) else None
            if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
                self._json(h, 400, {"error": "rules: expected a list of objects"})
                return
            self.collector.set_drop_rules(rules)
            self._json(h, 200, {"rules": len(rules)})
        elif path == "/broker/restart":
            self._restart_broker(h, body)
        else:
            self._json(h, 404, {"error": f"no route POST {path}"})

    def _restart_broker(self, h: BaseHTTPRequestHandler, body: Any) -> None:
        down = body.get("down_s", 0.0) if isinstance(body, dict) else None
        if self.broker_restart is None:
            self._json(h, 404, {"error": "no broker restart on this backend"})
        elif isinstance(down, bool) or not isinstance(down, int | float) or not 0 <= down <= 3600:
            self._json(h, 400, {"error": f"down_s: expected seconds in [0, 3600], got {down!r}"})
        else:
            try:
                self._json(h, 200, self.broker_restart(float(down)))
            except Exception as exc:  # report to the caller; the backend keeps serving
                self._json(h, 500, {"error": f"broker restart failed: {type(exc).__name__}: {exc}"})
