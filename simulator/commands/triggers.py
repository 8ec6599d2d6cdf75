"""`fleetsim triggers`: the Astarte trigger definitions fleetsim's observers need; print them or install them.

    fleetsim triggers [--target FILE] [--realm R] [--kind amqp|webhook|both] [--webhook-url URL]
    fleetsim triggers --target FILE --install --token T --realm-management-url https://api.example.com/realmmanagement

A data trigger `on: incoming_data` for io.edgehog.devicemanager.OTAEvent (major 0), `match_path: /*`, every
value, like the trigger Edgehog installs (docs/protocol.md section 3); its action is an `amqp_exchange`
(astarte_events_<realm>_<suffix>, a SimpleEvent protobuf per event) or an `http_url` POST (astarte doc
060-triggers.md). Installing POSTs `{"data": <trigger>}` to Realm Management
`<url>/v1/<realm>/triggers` with `Authorization: Bearer <token>` (a realm JWT with the a_rma claim). A new
trigger can take up to 10 minutes to reach every data_updater_plant (docs/protocol.md section 3).
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["HELP", "add_arguments", "amqp_trigger", "install_triggers", "run", "webhook_trigger"]

HELP = "print (or --install) the Astarte AMQP/webhook trigger definitions for fleetsim's observers"

OTA_EVENT_MAJOR = 0  # io.edgehog.devicemanager.OTAEvent v0.1 (simulator/interfaces/)
AMQP_TRIGGER_NAME = "fleetsim-ota-events-amqp"
WEBHOOK_TRIGGER_NAME = "fleetsim-ota-events-http"
MESSAGE_EXPIRATION_MS = 60_000  # an unconsumed event is useless to a finished run; keep the broker clean
TIMEOUT_S = 15.0


def _condition() -> list[dict[str, Any]]:
    return [
        {
            "type": "data_trigger",
            "on": "incoming_data",
            "interface_name": "io.edgehog.devicemanager.OTAEvent",
            "interface_major": OTA_EVENT_MAJOR,
            "match_path": "/*",
            "value_match_operator": "*",
        }
    ]


def amqp_trigger(exchange: str, routing_key: str = "fleetsim") -> dict[str, Any]:
    return {
        "name": AMQP_TRIGGER_NAME,
        "action": {
            "amqp_exchange": exchange,
            "amqp_routing_key": routing_key,
            "amqp_message_expiration_ms": MESSAGE_EXPIRATION_MS,
            "amqp_message_persistent": False,
        },
        "simple_triggers": _condition(),
    }


def webhook_trigger(url: str) -> dict[str, Any]:
    return {
        "name": WEBHOOK_TRIGGER_NAME,
        "action": {"http_url": url, "http_method": "post"},
        "simple_triggers": _condition(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="target file (realm and observer settings)")
    parser.add_argument("--realm", help="realm (default: the target file's, else fleetsim)")
    parser.add_argument(
        "--kind",
        choices=["amqp", "webhook", "both"],
        help="which trigger(s) (default: the target file's observer kind, else both)",
    )
    parser.add_argument(
        "--webhook-url",
        dest="webhook_url",
        help="URL Astarte should POST to (default: the observer's host:port/path)",
    )
    parser.add_argument("--install", action="store_true", help="POST them to Realm Management")
    parser.add_argument(
        "--token",
        default=os.environ.get("ASTARTE_REALM_TOKEN", ""),
        help="realm JWT (claim a_rma); default $ASTARTE_REALM_TOKEN",
    )
    parser.add_argument(
        "--realm-management-url",
        dest="rm_url",
        help="Realm Management API base, e.g. https://api.astarte.example.com/realmmanagement",
    )


def _definitions(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    from simulator.errors import UsageError

    realm = args.realm or "fleetsim"
    observer = None
    if args.target:
        from simulator.generator.target_file import read_target_file

        target = read_target_file(Path(args.target), Path(".fleetsim"))
        realm = args.realm or target.info.realm
        observer = target.observer
    kind = args.kind or (observer.kind if observer is not None else "both")
    out: list[dict[str, Any]] = []
    if kind in ("amqp", "both"):
        if observer is not None and observer.kind == "amqp":
            out.append(amqp_trigger(observer.exchange, observer.routing_key))
        else:
            out.append(amqp_trigger(f"astarte_events_{realm}_fleetsim"))
    if kind in ("webhook", "both"):
        url = args.webhook_url
        if not url and observer is not None and observer.kind == "webhook":
            if observer.host in ("0.0.0.0", "::", ""):
                raise UsageError(
                    "the webhook observer listens on all addresses; give --webhook-url with the "
                    "address Astarte can reach"
                )
            url = f"http://{observer.host}:{observer.port}{observer.path}"
        out.append(webhook_trigger(url or "http://127.0.0.1:8090/fleetsim/events"))
    return realm, out


def install_triggers(rm_url: str, realm: str, token: str, triggers: list[dict[str, Any]]) -> list[str]:
    """POST each trigger to Realm Management; one line per result. UsageError on the first failure."""
    from simulator.errors import UsageError

    base = rm_url.rstrip("/")
    endpoint = f"{base}/{realm}/triggers" if base.endswith("/v1") else f"{base}/v1/{realm}/triggers"
    lines = []
    for trigger in triggers:
        body = json.dumps({"data": trigger}).encode()
        request = urllib.request.Request(
            endpoint,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                lines.append(f"installed {trigger['name']} ({resp.status}) at {endpoint}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            hint = (
                " (already installed? delete it first)" if exc.code in (409, 422) and "name" in detail else ""
            )
            raise UsageError(
                f"{endpoint}: installing {trigger['name']}: HTTP {exc.code}{hint}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise UsageError(f"{endpoint}: unreachable: {getattr(exc, 'reason', exc)}") from None
    return lines


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UsageError

    realm, triggers = _definitions(args)
    if not args.install:
        print(json.dumps(triggers[0] if len(triggers) == 1 else triggers, indent=2))
        return 0
    if not args.token or not args.rm_url:
        raise UsageError("--install needs --token (or $ASTARTE_REALM_TOKEN) and --realm-management-url")
    if not args.rm_url.startswith(("http://", "https://")):
        raise UsageError(f"--realm-management-url: expected http(s)://..., got {args.rm_url!r}")
    for line in install_triggers(args.rm_url, realm, args.token, triggers):
        print(line)
    print("note: a new trigger can take up to 10 minutes to reach every Astarte data updater")
    return 0
