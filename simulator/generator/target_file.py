"""A real Astarte as the target: the target file (YAML) -> TargetInfo, and the observer it configures.

    pairing_url: https://api.astarte.example.com/pairing   # the SDK's pairing_base_url (docs/protocol.md 2)
    realm: staging
    agent_jwt: ${ASTARTE_PAIRING_JWT}      # a Pairing API token (claim a_pa) ...
    realm_private_key: ./staging.key       # ... or the realm's private key (PEM): fleetsim signs the token
    ca_file: ./astarte-ca.pem              # verify HTTPS and mqtts with it (default: system CAs)
    ignore_ssl_errors: false               # or true, for a self-signed staging (not with ca_file)
    device_id_prefix: fleetsim             # optional: sequential ids start with these bytes (<= 12)
    credentials_dir: .fleetsim/credentials # optional; default <state dir>/credentials
    broker_url: mqtts://broker.astarte.example.com:8883/   # optional: checked only (Pairing returns it)
    observer:                              # optional: how fleetsim sees events arrive (docs/protocol.md section 3)
      kind: amqp                           # AMQP trigger action (simulator.observers.amqp_trigger)
      url: amqp://user:${AMQP_PASSWORD}@rabbitmq.example.com:5672/%2F_staging
      exchange: astarte_events_staging_fleetsim
      queue: fleetsim_events               # optional (default: a server-named, exclusive queue)
      routing_key: fleetsim                # optional (default "fleetsim")
    # observer: {kind: webhook, host: 0.0.0.0, port: 8090, path: /fleetsim/events}   # HTTP trigger action
    edgehog: {url: https://api.edgehog.example.com, tenant: acme, tenant_jwt: ${EDGEHOG_TENANT_JWT}}
                                           # optional: mode campaign drives Edgehog (simulator.edgehog.config)

`${NAME}` in any text value is replaced by the environment variable NAME (CI secrets stay out of files).
Every problem is a ConfigError naming file:line:field (simulator.errors); all of them are reported at once.
The agent token, when signed here, carries `a_pa: [".*::.*"]` like Astarte's own tooling (astartectl
`utils gen-jwt pairing`) and the SDK's token helper, ES256 for an EC key and RS256 for an RSA key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from yaml.nodes import Node, ScalarNode

from simulator.edgehog.config import EdgehogConfig, read_edgehog_section
from simulator.errors import ConfigError, ConfigErrors
from simulator.observers.base import Observer
from simulator.scenario.nodes import NodeReader, line_of
from simulator.target_info import TargetInfo
from simulator.tokens import sign_jwt

__all__ = [
    "ObserverConfig",
    "TargetFile",
    "load_observer_config",
    "load_target_file",
    "observer_for",
    "read_target_file",
    "sign_agent_jwt",
]

TOP_KEYS = (
    "pairing_url",
    "realm",
    "agent_jwt",
    "realm_private_key",
    "ca_file",
    "ignore_ssl_errors",
    "device_id_prefix",
    "credentials_dir",
    "broker_url",
    "observer",
    "edgehog",
)
AMQP_KEYS = ("kind", "url", "exchange", "queue", "routing_key", "prefetch")
WEBHOOK_KEYS = ("kind", "host", "port", "path")
TOKEN_TTL_S = 24 * 3600  # a signed agent token outlives any run; Astarte checks `exp` when present
_REALM = re.compile(r"^[a-z][a-z0-9]{0,47}$")  # Astarte realm names (astarte_housekeeping realm validation)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PORTS = {"http": 80, "https": 443, "mqtts": 8883, "mqtt": 1883, "ssl": 8883, "amqp": 5672, "amqps": 5671}


@dataclass(frozen=True)
class ObserverConfig:
    kind: str  # "amqp" | "webhook"
    url: str = ""
    exchange: str = ""
    queue: str = ""
    routing_key: str = "fleetsim"
    prefetch: int = 1000
    host: str = "127.0.0.1"
    port: int = 8090
    path: str = "/fleetsim/events"


@dataclass(frozen=True)
class TargetFile:
    """What the file says, checked; `info` is what the generator gets."""

    info: TargetInfo
    observer: ObserverConfig | None
    device_id_prefix: str = ""
    edgehog: EdgehogConfig | None = None


def sign_agent_jwt(key_pem: bytes, ttl_s: int = TOKEN_TTL_S) -> str:
    """A Pairing API agent token signed with the realm's private key (ES256 for EC, RS256 for RSA)."""
    return sign_jwt(key_pem, {"a_pa": [".*::.*"]}, ttl_s)


class _Reader:
    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.r = NodeReader(source)
        self.env = env
        self.lines: dict[str, int] = {}

    def text(self, node: Node, field: str) -> str | None:
        value = self.r.text(node, field)
        if value is None:
            return None
        missing = [name for name in _ENV.findall(value) if name not in self.env]
        if missing:
            self.r.error(line_of(node), field, f"environment variable {missing[0]} is not set")
            return None
        return _ENV.sub(lambda m: self.env[m.group(1)], value)

    def url(self, node: Node, field: str, schemes: tuple[str, ...]) -> str | None:
        """A URL with one of `schemes`, a host and a valid port: one clear line otherwise."""
        value = self.text(node, field)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            self.r.error(line_of(node), field, f"bad URL {value!r}: {exc} (port must be 1..65535)")
            return None
        if parts.scheme not in schemes:
            self.r.error(line_of(node), field, f"scheme must be {' or '.join(schemes)}, got {value!r}")
            return None
        if not parts.hostname:
            self.r.error(line_of(node), field, f"no host in {value!r}")
            return None
        if port == 0:
            self.r.error(line_of(node), field, f"port must be 1..65535, got 0 in {value!r}")
            return None
        return value


def _compose(source: str, text: str) -> Node:
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else 0
        raise ConfigErrors(
            [ConfigError(source, line, "", f"YAML syntax error: {getattr(exc, 'problem', exc)}")]
        ) from None
    if root is None or (isinstance(root, ScalarNode) and root.tag == "tag:yaml.org,2002:null"):
        raise ConfigErrors(
            [
                ConfigError(
                    source, 0, "", "the target file is empty (see docs in simulator/generator/target_file.py)"
                )
            ]
        )
    return root


def _observer(rd: _Reader, node: Node) -> ObserverConfig | None:
    r = rd.r
    keys = r.mapping(node, "observer", (*AMQP_KEYS, *WEBHOOK_KEYS))
    if keys is None:
        return None
    if not r.require(node, keys, "observer", ("kind",)):
        return None
    kind = rd.text(keys["kind"], "observer.kind")
    allowed: tuple[str, ...]
    required: tuple[str, ...]
    if kind == "amqp":
        allowed, required = AMQP_KEYS, ("url", "exchange")
    elif kind == "webhook":
        allowed, required = WEBHOOK_KEYS, ("port",)
    else:
        if kind is not None:
            r.error(line_of(keys["kind"]), "observer.kind", f"expected amqp or webhook, got {kind!r}")
        return None
    for key, value in keys.items():
        if key not in allowed:
            r.error(
                line_of(value),
                f"observer.{key}",
                f"not a setting of the {kind} observer (allowed: {', '.join(allowed)})",
            )
    if not r.require(node, keys, "observer", required):
        return None
    out: dict[str, Any] = {"kind": kind}
    if kind == "amqp":
        out["url"] = rd.url(keys["url"], "observer.url", ("amqp", "amqps"))
        for key in ("exchange", "queue", "routing_key"):
            if key in keys:
                out[key] = rd.text(keys[key], f"observer.{key}")
        if "prefetch" in keys:
            out["prefetch"] = r.integer(keys["prefetch"], "observer.prefetch")
        exchange = out.get("exchange")
        if isinstance(exchange, str) and not exchange.startswith("astarte_events_"):
            r.error(
                line_of(keys["exchange"]),
                "observer.exchange",
                f"Astarte publishes only to astarte_events_<realm>_<suffix> exchanges, got {exchange!r}",
            )
    else:
        if "host" in keys:
            out["host"] = rd.text(keys["host"], "observer.host")
        port = r.integer(keys["port"], "observer.port")
        if port is not None and not 1 <= port <= 65535:
            r.error(line_of(keys["port"]), "observer.port", f"must be 1..65535, got {port}")
        out["port"] = port
        if "path" in keys:
            path = rd.text(keys["path"], "observer.path")
            if path is not None and not path.startswith("/"):
                r.error(line_of(keys["path"]), "observer.path", f"must start with '/', got {path!r}")
            out["path"] = path
    if any(v is None for v in out.values()):
        return None
    return ObserverConfig(**out)


def read_target_file(path: Path, state_dir: Path, env: Mapping[str, str] | None = None) -> TargetFile:
    """Parse and check a target file (every problem reported at once as ConfigErrors)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigErrors([ConfigError(source, 0, "", "no such target file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(source, 0, "", f"cannot read: {exc}")]) from None
    rd = _Reader(source, os.environ if env is None else env)
    r = rd.r
    root = _compose(source, text)
    keys = r.mapping(root, "", TOP_KEYS)
    if keys is None:
        raise ConfigErrors(r.errors)
    r.require(root, keys, "", ("pairing_url", "realm"))
    base = Path(path).parent
    pairing = rd.url(keys["pairing_url"], "pairing_url", ("http", "https")) if "pairing_url" in keys else None
    realm = rd.text(keys["realm"], "realm") if "realm" in keys else None
    if realm is not None and not _REALM.match(realm):
        r.error(
            line_of(keys["realm"]),
            "realm",
            f"not an Astarte realm name (lowercase letters and digits, starting with a letter): {realm!r}",
        )
    if "broker_url" in keys:
        rd.url(keys["broker_url"], "broker_url", ("mqtts", "ssl"))
    jwt_token = ""
    if ("agent_jwt" in keys) == ("realm_private_key" in keys):
        r.error(line_of(root), "agent_jwt", "give exactly one of agent_jwt or realm_private_key")
    elif "agent_jwt" in keys:
        jwt_token = rd.text(keys["agent_jwt"], "agent_jwt") or ""
        if jwt_token and jwt_token.count(".") != 2:
            r.error(line_of(keys["agent_jwt"]), "agent_jwt", "not a JWT (three dot-separated parts)")
    else:
        key_path = rd.text(keys["realm_private_key"], "realm_private_key")
        if key_path is not None:
            try:
                jwt_token = sign_agent_jwt((base / key_path).read_bytes())
            except OSError as exc:
                r.error(
                    line_of(keys["realm_private_key"]), "realm_private_key", f"cannot read {key_path}: {exc}"
                )
            except (ValueError, TypeError) as exc:
                r.error(
                    line_of(keys["realm_private_key"]),
                    "realm_private_key",
                    f"{key_path}: not a usable PEM private key ({exc})",
                )
    ca_file = ""
    if "ca_file" in keys:
        ca_text = rd.text(keys["ca_file"], "ca_file")
        if ca_text is not None:
            ca_file = str(base / ca_text)
            if not Path(ca_file).is_file():
                r.error(line_of(keys["ca_file"]), "ca_file", f"no such file: {ca_file}")
    ignore = (
        r.boolean(keys["ignore_ssl_errors"], "ignore_ssl_errors") if "ignore_ssl_errors" in keys else False
    )
    if ignore and ca_file:
        r.error(
            line_of(keys["ignore_ssl_errors"]),
            "ignore_ssl_errors",
            "give ca_file or ignore_ssl_errors, not both",
        )
    prefix = rd.text(keys["device_id_prefix"], "device_id_prefix") if "device_id_prefix" in keys else ""
    if prefix and len(prefix.encode("utf-8")) > 12:
        r.error(
            line_of(keys["device_id_prefix"]),
            "device_id_prefix",
            f"at most 12 bytes fit in a 16-byte id with a 4-byte index, got {len(prefix.encode())}",
        )
    creds = rd.text(keys["credentials_dir"], "credentials_dir") if "credentials_dir" in keys else None
    observer = _observer(rd, keys["observer"]) if "observer" in keys else None
    edgehog = read_edgehog_section(rd, keys["edgehog"], base) if "edgehog" in keys else None
    if r.errors:
        raise ConfigErrors(sorted(r.errors, key=lambda e: e.line))
    assert pairing is not None and realm is not None
    info = TargetInfo(
        kind="astarte",
        realm=realm,
        pairing_url=pairing.rstrip("/"),
        agent_jwt=jwt_token,
        ca_file=ca_file,
        ignore_ssl_errors=bool(ignore),
        credentials_dir=str(base / creds) if creds else str(state_dir / "credentials"),
        target_file=str(Path(path).resolve()),
    )
    return TargetFile(info=info, observer=observer, device_id_prefix=prefix or "", edgehog=edgehog)


def load_target_file(path: Path, state_dir: Path) -> TargetInfo:
    """The TargetInfo of a target file (imported by simulator.generator.target.open_target)."""
    return read_target_file(path, state_dir).info


def load_observer_config(path: str | Path) -> ObserverConfig | None:
    return read_target_file(Path(path), Path(".fleetsim")).observer


def observer_for(target: TargetInfo, early_t_margin_s: float = 5.0) -> Observer | None:
    """The observer the target file configures (None: no observer => no e2e latency, no loss accounting).
    `early_t_margin_s`: how far before the run's mark a device `t` may be (simulator.observers.fence)."""
    if target.kind != "astarte" or not target.target_file:
        return None
    config = load_observer_config(target.target_file)
    if config is None:
        return None
    if config.kind == "amqp":
        from simulator.observers.amqp_trigger import AmqpTriggerObserver

        return AmqpTriggerObserver(
            config.url,
            config.exchange,
            queue=config.queue,
            routing_key=config.routing_key,
            prefetch=config.prefetch,
            realm=target.realm,
            early_t_margin_s=early_t_margin_s,
        )
    from simulator.observers.webhook_trigger import WebhookObserver

    return WebhookObserver(host=config.host, port=config.port, path=config.path, realm=target.realm,
                           early_t_margin_s=early_t_margin_s)
