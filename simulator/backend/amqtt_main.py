"""Subprocess entry point of the pip-only broker: `python -m simulator.backend.amqtt_main --config <json>`.

Runs amqtt 0.12.1 with one mutual-TLS listener and patches the few private internals that its public
configuration cannot reach (each measured on amqtt 0.12.1, source in site-packages/amqtt/broker.py):

- `Broker._create_ssl_context` hard-codes `ssl.CERT_OPTIONAL`: a client without a certificate would get in.
  Overridden to CERT_REQUIRED, TLS >= 1.2, and an `SSLObject` subclass that counts failed handshakes by kind;
  with the config's `broker_tls` "astarte" (BrokerConfig's default) also TLS <= 1.2 and no session ticket
  (maximum_version, OP_NO_TICKET, num_tickets 0), as mosquitto through simulator.backend.openssl_conf; with
  "openssl", Python's ssl defaults (TLS 1.3, 2 tickets).
- `Broker._initialize_client_session` deletes (clean session) or adopts (persistent session) the session of
  the presented client id *before* authentication, and `_handle_client_session` stores the new session and
  takes over a connected one before it checks the verdict: any TLS client could knock the collector out by
  reusing its client id. Overridden to read the CONNECT first, vet identity and client id, and refuse before
  amqtt touches its session table.
- `Broker._topic_filtering` schedules one asyncio task per plugin per check (publish, subscribe and once per
  subscriber per message); replaced by a direct synchronous call to the same plugin method.
- `_handle_message_delivery` broadcasts without the publish QoS, so every subscriber gets its subscription
  QoS; the publish QoS is now forced (exact for Astarte's QoS 2 subscribers; see amqtt_broker's docstring).

Line protocol on stdout, one JSON object per line: `{"event": "ready", "port": N}` once listening,
`{"event": "refusal", "kind": K, "detail": D}` per refusal, `{"event": "error", "message": M}` on a startup
failure (exit 2), `{"event": "stopped"}` at the end. Logs go to stderr (the parent points it at a file).
SIGTERM/SIGINT: shut down, waiting at most `shutdown_timeout_s` (amqtt's shutdown() can hang), then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.errors import AMQTTError
from amqtt.mqtt.connack import IDENTIFIER_REJECTED, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.session import Session

from simulator.backend.amqtt_plugin import (
    IDENTITY_KEY,
    FleetsimAuthPlugin,
    Identity,
    RefusalSink,
    classify_tls_error,
    cn_from_peercert,
)

__all__ = ["REQUIRED_KEYS", "GuardedBroker", "amqtt_config", "main"]

_log = logging.getLogger("fleetsim.amqtt")
_PLUGIN_PATH = f"{FleetsimAuthPlugin.__module__}.{FleetsimAuthPlugin.__name__}"
REQUIRED_KEYS = ("host", "port", "ca_file", "cert_file", "key_file", "realm", "admin_cn")
# QoS of the PUBLISH being handled by the current connection's task (GuardedBroker._handle_message_delivery).
_PUBLISH_QOS: contextvars.ContextVar[int | None] = contextvars.ContextVar("fleetsim_pub_qos", default=None)


class _Emitter:
    """Writes the line protocol to stdout (the parent reads it on a thread) and logs each refusal."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def emit(self, **fields: Any) -> None:
        sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def refusal(self, kind: str, detail: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        _log.warning("refused %s: %s", kind, detail)
        self.emit(event="refusal", kind=kind, detail=detail)


def _counting_sslobject(sink: RefusalSink) -> type[ssl.SSLObject]:
    """An SSLObject class whose failed server handshakes are reported to `sink`.

    asyncio's SSL protocol creates it through `SSLContext.wrap_bio` (asyncio/sslproto.py) and reports
    handshake errors only at debug level (they are OSErrors), so this is the one place a refusal can be seen.
    """

    class CountingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except ssl.SSLError as exc:
                sink(classify_tls_error(exc), str(getattr(exc, "verify_message", None) or exc.reason or exc))
                raise

    return CountingSSLObject


class _RecordingReader(ReaderAdapter):  # type: ignore[misc]  # amqtt ships no type hints
    """Reads through to `inner` and keeps a copy, so the CONNECT is parsed twice (by us, then by amqtt)."""

    def __init__(self, inner: ReaderAdapter) -> None:
        self._inner = inner
        self.recorded = bytearray()

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await self._inner.read(n)
        self.recorded += data
        return data

    def feed_eof(self) -> None:
        self._inner.feed_eof()


class _ReplayReader(ReaderAdapter):  # type: ignore[misc]
    """Serves `recorded` first, then reads from `inner`."""

    def __init__(self, recorded: bytes, inner: ReaderAdapter) -> None:
        self._buffer = bytearray(recorded)
        self._inner = inner

    async def read(self, n: int = -1) -> bytes:
        if not self._buffer:
            data: bytes = await self._inner.read(n)
            return data
        take = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        head = bytes(self._buffer[:take])
        del self._buffer[:take]
        if n > take:
            head += await self._inner.read(n - take)
        return head

    def feed_eof(self) -> None:
        self._inner.feed_eof()


class GuardedBroker(Broker):  # type: ignore[misc]
    """amqtt's Broker with CERT_REQUIRED, authentication before any session change, and a fast ACL path."""

    def __init__(self, config: dict[str, Any], sink: RefusalSink, astarte_tls: bool = True) -> None:
        super().__init__(config)
        plugin = self.plugins_manager.get_plugin(FleetsimAuthPlugin.__name__)
        if not isinstance(plugin, FleetsimAuthPlugin):
            raise AMQTTError(f"plugin {_PLUGIN_PATH} did not load")
        plugin.sink = sink
        self._guard = plugin
        self._sink = sink
        self._astarte_tls = astarte_tls

    @property
    def bound_port(self) -> int:
        """The listener's actual port (config port 0: the kernel picked it); amqtt has no public accessor."""
        server = self._servers["default"].instance
        port: int = server.sockets[0].getsockname()[1]
        return port

    def _create_ssl_context(self, listener: Any) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cafile=str(listener["cafile"]))
        context.load_cert_chain(str(listener["certfile"]), str(listener["keyfile"]))
        context.verify_mode = ssl.CERT_REQUIRED
        context.sslobject_class = _counting_sslobject(self._sink)
        if self._astarte_tls:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.options |= ssl.OP_NO_TICKET
            context.num_tickets = 0
        return context

    async def _refuse(self, writer: WriterAdapter, code: int, kind: str, detail: str) -> None:
        self._sink(kind, detail)
        try:
            await ConnackPacket.build(0, code).to_stream(writer)
        finally:
            await writer.close()
        raise AMQTTError(f"refused ({kind}): {detail}")

    async def _vet(self, connect: Any, writer: WriterAdapter) -> Identity:
        """Identity of a parsed CONNECT on this TLS connection, or a refusal (CONNACK sent, AMQTTError)."""
        ssl_object = writer.get_ssl_info()
        peercert = ssl_object.getpeercert() if ssl_object is not None else None
        if not peercert:  # unreachable with CERT_REQUIRED; kept so a config slip cannot open the broker
            await self._refuse(writer, NOT_AUTHORIZED, "no_cert", "no verified client certificate")
        cn = cn_from_peercert(peercert)
        identity = self._guard.policy.identify(cn)
        if identity is None:
            await self._refuse(writer, NOT_AUTHORIZED, "bad_cn", f"certificate CN {cn!r} not admitted")
        assert identity is not None
        client_id = connect.payload.client_id or ""
        is_random = bool(connect.payload.client_id_is_random)
        if not self._guard.policy.client_id_allowed(identity, client_id, is_random):
            kind = "client_id_reuse" if client_id in self._sessions else "client_id_mismatch"
            detail = f"{identity.cn} presented client id {client_id!r}"
            await self._refuse(writer, IDENTIFIER_REJECTED, kind, detail)
        return identity

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[Any, Session]:
        recorder = _RecordingReader(reader)
        try:
            connect = await ConnectPacket.from_stream(recorder)
        except Exception:  # malformed: let amqtt parse the same bytes again and refuse it its own way
            connect = None
        identity = None
        if connect is not None and connect.payload is not None:
            identity = await self._vet(connect, writer)
        replay = _ReplayReader(bytes(recorder.recorded), reader)
        handler, session = await super()._initialize_client_session(
            replay, writer, remote_address, remote_port
        )
        # A persistent session may have been adopted: it must carry *this* connection's identity and TLS.
        session.attributes[IDENTITY_KEY] = identity
        session.ssl_object = writer.get_ssl_info()
        return handler, session

    async def _topic_filtering(self, session: Session, topic: str, action: Any) -> bool:
        return self._guard.check_topic(session, topic, action)

    async def _handle_message_delivery(
        self, client_session: Session, handler: Any, wait_deliver: Any
    ) -> bool:
        message = wait_deliver.result()
        token = _PUBLISH_QOS.set(getattr(message, "qos", None))
        try:
            result: bool = await super()._handle_message_delivery(client_session, handler, wait_deliver)
            return result
        finally:
            _PUBLISH_QOS.reset(token)

    async def _broadcast_message(
        self, session: Session | None, topic: str | None, data: Any, force_qos: int | None = None
    ) -> None:
        if force_qos is None and session is not None:
            force_qos = _PUBLISH_QOS.get()
        await super()._broadcast_message(session, topic, data, force_qos)


def amqtt_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """amqtt's BrokerConfig dict (amqtt contexts.py) for our config: one TLS listener, only our plugin."""
    return {
        "listeners": {
            "default": {
                "type": "tcp",
                "bind": f"{cfg['host']}:{int(cfg['port'])}",
                "ssl": True,
                "cafile": str(cfg["ca_file"]),
                "certfile": str(cfg["cert_file"]),
                "keyfile": str(cfg["key_file"]),
            }
        },
        "plugins": {_PLUGIN_PATH: {"realm": cfg["realm"], "admin_cn": cfg["admin_cn"]}},
    }


async def _serve(cfg: dict[str, Any], emitter: _Emitter) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    broker = GuardedBroker(amqtt_config(cfg), emitter.refusal, cfg.get("broker_tls", "astarte") == "astarte")
    await broker.start()
    emitter.emit(event="ready", port=broker.bound_port, pid=os.getpid())
    await stop.wait()
    try:
        await asyncio.wait_for(broker.shutdown(), timeout=float(cfg.get("shutdown_timeout_s", 2.0)))
    except (TimeoutError, Exception) as exc:  # a hung or failing shutdown must not keep the port
        _log.warning("amqtt shutdown did not finish cleanly: %r", exc)


def _load(path: str) -> dict[str, Any]:
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in cfg]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)}")
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simulator.backend.amqtt_main", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON file: " + ", ".join(REQUIRED_KEYS))
    args = parser.parse_args(argv)
    emitter = _Emitter()
    try:
        cfg = _load(args.config)
    except ValueError as exc:
        emitter.emit(event="error", message=str(exc))
        return 2
    # amqtt and `transitions` log several INFO lines per connection and message: far too costly under load, so
    # only warnings from them; refusals are warnings and always logged.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if cfg.get("verbose_log"):
        logging.getLogger("fleetsim").setLevel(logging.INFO)
    # Not asyncio.run(): its teardown waits on amqtt's leftover tasks, which is where shutdown can hang.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_serve(cfg, emitter))
    except Exception as exc:
        emitter.emit(event="error", message=f"{type(exc).__name__}: {exc}")
        sys.stderr.flush()
        os._exit(2)
    emitter.emit(event="stopped", refusals=emitter.counts)
    sys.stderr.flush()
    # Exit now rather than wait on amqtt's leftover tasks; the kernel closes the listening socket.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
