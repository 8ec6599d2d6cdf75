"""mosquitto as the embedded backend's broker: generated config, mutual TLS, per-device ACL, subprocess.

Astarte's broker (VerneMQ + astarte_vmq_plugin, docs/protocol.md section 1) authenticates a device by its client
certificate and lets it use only topics under `<realm>/<device_id>`, which is exactly the certificate CN. With
mosquitto 2.x that is `require_certificate true` + `use_identity_as_username true` (the CN becomes the
username, so the client is not anonymous and `allow_anonymous false` still admits it) and the ACL patterns
`pattern readwrite %u` / `pattern readwrite %u/#`. The collector / campaign identity (`admin_cn`) gets
`topic readwrite #`.

Limits (documented numbers, chosen for load tests):
- `max_inflight_messages 0`: no limit on the outgoing QoS 1/2 messages per connection sent and not yet acknowledged
  (mosquitto.conf(5); VerneMQ's per-connection default is 100, docs/protocol.md section 1, which this config had
  until 2026-12-07). What each choice costs with mosquitto 2.0.11, from its source (github.com/eclipse/mosquitto,
  tag v2.0.11) and from what this machine's build (Debian 2.0.11-1.2+deb12u2: 2.0.11 plus security patches, not read
  here) did:
  * with a window, a message for a client whose window is full waits in that client's queue. Upstream
    db__message_insert (src/database.c) first writes the client's new in-flight messages
    (db__message_write_inflight_out_latest) and only then moves queued ones into the window
    (db__message_write_queued_out, which moves them without writing them; handle_connect.c and handle_subscribe.c
    call the two the other way round), so a message moved there is written by the client's next write: another
    message for it, or its next PUBACK/PUBCOMP (db__message_delete_outgoing ends with one). A PUBREC writes nothing
    (lib/handle_pubrec.c: db__message_update_outgoing) and there is no timed retry (none since 1.5, ChangeLog.txt).
    This machine's build also never moved a queued message on an acknowledgement, which upstream's
    db__message_delete_outgoing reads as doing: in its debug log of
    tests/integration/backend/test_collector_backlog.py's burst with 100 (2,501 QoS 2 messages for a collector at
    ~2 ms each), 36 PUBCOMPs with 13 messages queued and the last 176 with 2,277 queued sent nothing; only the next
    message for the collector moved some, written by the write after. Once the burst had come, mosquitto had sent
    224 and the rest stayed queued (223 of 2,500 arrived in 25 s; 109-150 in 90 s in earlier runs);
  * without a window (0), nothing waits in the queue (db__ready_for_flight is true at once): each message is written
    to the client when it comes, so a backlog waits in mosquitto's outgoing packet list and the socket, which
    `max_queued_messages` does not bound, and beyond 65,535 unacknowledged messages the packet ids that
    mosquitto__mid_generate hands out repeat. An acknowledgement costs the same with or without a window:
    db__message_delete_outgoing stops at the acknowledged message (the `break` in its first loop), the head of the
    list when acks come in order. Every message of that burst arrives (2,501 sent, all 2,500 OTAEvents in 7.8 s).
    (This docstring said until 2026-12-07 that it walked the whole list with no early exit; it does not. The 2,000/s
    soak that lost 11,600 events without a window coincided with mosquitto blocking in write(2) on its full log
    pipe, which stops every client's acks.)
  0, because a load test's collector must not strand what the broker acknowledged to the devices; the A/B of the two
  on a quiet machine (bench/soak_memory.py) is in README.md ("The embedded backend at 2,000 events/s"). A collector
  that keeps up (the `fleetsim backend` process has its own core) never holds a window's worth either way.
- `max_queued_messages 1000000`, `max_queued_bytes 0`: the admin subscriber receives every device's traffic; a
  burst of 1,000 devices x ~10 events must queue rather than be dropped (~200 bytes each: <= ~200 MB). With no
  window nothing queues for a connected client (above); the limits matter again if the window comes back.
- `max_packet_size 66560`: VerneMQ's 65,535-byte message limit plus 1 KiB for topic and headers.
- `persistence false`: a load test starts from nothing, and disk writes would skew latency.
- TLS: `tls_version tlsv1.2` is a minimum; with `BrokerConfig.broker_tls` "astarte" (the default) mosquitto also
  speaks at most TLS 1.2 and sends no session ticket, as Astarte's VerneMQ (sources: simulator.backend.broker).
  mosquitto has no option for either, so `start()` writes `openssl.cnf` beside mosquitto.conf and gives mosquitto
  alone `OPENSSL_CONF` (simulator.backend.openssl_conf, which also says why the system's file is not included);
  with "openssl" mosquitto runs with the host's OpenSSL configuration (TLS 1.3, 2 tickets).
ACL denials on PUBLISH are silent to an MQTT 3.1.1 client and logged by mosquitto only at debug level, so
`refusals()` needs `BrokerConfig.verbose_log` (the default). At debug level mosquitto logs ~700 bytes per QoS 2
OTAEvent, which a file would pile up without bound, so the log goes to mosquitto's stderr, a pipe drained by the
log relay (simulator.backend.log_relay), a small process of its own started beside mosquitto: it writes the
size-capped `mosquitto.log` (+ `.1`) and forwards only refusals and a byte count to this process, where
simulator.backend.broker_log.BrokerLogReader reads them. Not a thread here: mosquitto blocks in write(2) when
that pipe is full, freezing every client's acks, and a thread stops whenever this process does (a stopped or
starved collector); the relay keeps draining (broker_log's docstring has the measurements). `stop()` and a
failed `start()` reap both processes: mosquitto first, whose exit ends the relay's input, then the relay.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil

from simulator.backend import log_relay
from simulator.backend.broker import BrokerConfig
from simulator.backend.broker_log import BrokerLogReader, parse_refusals
from simulator.backend.openssl_conf import OPENSSL_CONF_NAME, broker_env, write_openssl_conf

__all__ = ["MosquittoBroker", "free_port", "mosquitto_version", "parse_refusals"]

_START_DEADLINE_S = 5.0
_STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 3

_VERSION = re.compile(rb"mosquitto version (\S+)")


def mosquitto_version(binary: str) -> str:
    """"2.0.11" from `mosquitto -h`'s first line ("mosquitto version 2.0.11"); "" when it cannot be read."""
    try:
        # `-h` prints usage and exits (code 3 on 2.0); 5 s is ample for a binary that only prints its help.
        out = subprocess.run([binary, "-h"], capture_output=True, timeout=5.0, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    match = _VERSION.search(out.stdout + out.stderr)
    return match.group(1).decode("ascii", "replace") if match else ""


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on `host` (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class MosquittoBroker:
    """A mosquitto subprocess with the generated config; `start()` returns once the port listens."""

    def __init__(self, config: BrokerConfig, binary: str = "mosquitto") -> None:
        self._config = config
        self._binary = binary
        self._version: str | None = None  # read from the binary on first use
        self._dir = config.work_dir / "mosquitto"
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = config.port
        self._lock = threading.Lock()
        self._log: BrokerLogReader | None = None  # the running broker's log reader
        self._relay: subprocess.Popen[bytes] | None = None  # the running broker's log relay
        self._earlier: dict[str, int] = {}  # refusals counted by the readers of earlier starts (restarts)

    # -- Broker protocol ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "mosquitto"

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = mosquitto_version(self._binary)
        return self._version

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtts://{self._config.host}:{self._port}/"

    @property
    def config_path(self) -> Path:
        return self._dir / "mosquitto.conf"

    @property
    def acl_path(self) -> Path:
        return self._dir / "acl"

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    @property
    def openssl_conf_path(self) -> Path:
        """The OpenSSL configuration mosquitto runs with (TLS 1.2 at most, no session ticket), for "astarte"."""
        return self._dir / OPENSSL_CONF_NAME

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def relay_pid(self) -> int | None:
        """The log relay's process (simulator.backend.log_relay), while mosquitto runs."""
        return self._relay.pid if self._relay is not None else None

    def start(self) -> None:
        """Write config + ACL, launch mosquitto, wait (polling, 5 s deadline) until its port listens."""
        if self._proc is not None:
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        self.acl_path.write_text(self._acl_text())
        env = self._openssl_env()
        fixed = self._config.port != 0
        last_error = ""
        for _ in range(1 if fixed else _PORT_ATTEMPTS):
            port = self._config.port if fixed else free_port(self._config.host)
            self.config_path.write_text(self._config_text(port))
            # The log (and any early error) on a pipe that the relay drains from now on: a pipe nobody reads
            # would block mosquitto once it is full (module docstring).
            proc = subprocess.Popen(
                [self._binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            )
            relay, log = self._start_relay(proc)
            if self._wait_listening(proc, port):
                self._proc, self._port, self._log, self._relay = proc, port, log, relay
                return
            # Lost the race for the port (or a config error): collect the reason and retry on another port.
            self._reap(proc)
            self._reap_relay(relay, log)
            last_error = log.tail()
        reason = last_error.strip() or "no listening socket within 5 s"
        raise RuntimeError(f"mosquitto did not start: {reason}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; always reaps the process, then its log relay."""
        proc, self._proc = self._proc, None
        if proc is not None:
            self._reap(proc)
        log, relay = self._log, self._relay
        if log is not None and relay is not None:
            self._reap_relay(relay, log)  # EOF follows the exit: the last lines are counted before stop() returns
            with self._lock:
                self._log, self._relay = None, None
                for kind, n in log.refusals().items():
                    self._earlier[kind] = self._earlier.get(kind, 0) + n

    def refusals(self) -> dict[str, int]:
        """Refusals seen so far by kind (acl_publish, acl_subscribe, no_client_cert, bad_client_cert, ...),
        over every start of this broker (a restart does not forget the earlier ones)."""
        with self._lock:
            counts = dict(self._earlier)
            log = self._log
        for kind, n in (log.refusals() if log is not None else {}).items():
            counts[kind] = counts.get(kind, 0) + n
        return counts

    def refusal_examples(self) -> list[str]:
        """The running broker's most recent refusal log lines (at most broker_log.EXAMPLES_KEPT)."""
        log = self._log
        return log.examples() if log is not None else []

    def wait_for_refusals(self, kind: str, count: int = 1, timeout_s: float = 5.0) -> bool:
        """True once `count` refusals of `kind` are logged. mosquitto writes the log line after the client has
        already seen its connection fail, so a reader right after the failure can be early: this waits on the
        log reader, which wakes it when a chunk with a refusal arrives."""
        log = self._log
        if log is None:
            return self.refusals().get(kind, 0) >= count
        with self._lock:
            earlier = self._earlier.get(kind, 0)
        return log.wait_for(kind, count - earlier, timeout_s)

    # -- internals ---------------------------------------------------------------------------------

    def _acl_text(self) -> str:
        # mosquitto 2.x ACL syntax (mosquitto.conf(5), "acl_file"): `user` lines scope the following `topic`
        # lines; `pattern` lines apply to every client; %u = username = certificate CN = <realm>/<device_id>.
        return (
            f"user {self._config.admin_cn}\n"
            "topic readwrite #\n"
            "\n"
            "pattern readwrite %u\n"
            "pattern readwrite %u/#\n"
        )

    def _config_text(self, port: int) -> str:
        c = self._config
        log_types = ["error", "warning", "notice", "information"]
        if c.verbose_log:
            log_types.append("debug")
        lines = [
            "# generated by fleetsim (simulator/backend/mosquitto.py); rewritten on every start",
            # Run as whoever we are: mosquitto started as root otherwise drops to user "mosquitto", which
            # cannot read our 0600 key files or write into our state dir (mosquitto.conf(5), "user").
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "per_listener_settings false",
            "persistence false",
            "allow_anonymous false",
            f"acl_file {self.acl_path}",
            "max_inflight_messages 0",  # no window; what a window and 0 each cost: module docstring
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            "max_packet_size 66560",
            "connection_messages true",
            "log_dest stderr",  # a pipe drained by the log relay (module docstring)
            *(f"log_type {t}" for t in log_types),
            "log_timestamp true",
            "",
            f"listener {port} {c.host}",
            "protocol mqtt",
            f"cafile {c.ca_file}",
            f"certfile {c.cert_file}",
            f"keyfile {c.key_file}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
            # mosquitto leaves Nagle on by default: a PUBREC/PUBCOMP queued behind an earlier small write waits
            # for the client's delayed ACK (~40 ms on Linux), which showed as a 45 ms floor on back-to-back
            # QoS 2 publishes (Deployed, Rebooting). mosquitto.conf(5) set_tcp_nodelay, since 2.0.
            "set_tcp_nodelay true",
            "",
        ]
        return "\n".join(lines)

    def _openssl_env(self) -> dict[str, str] | None:
        """mosquitto's environment: OPENSSL_CONF for Astarte's TLS ("astarte"), else None (inherit ours)."""
        if self._config.broker_tls == "openssl":
            self.openssl_conf_path.unlink(missing_ok=True)  # an earlier start's file, no longer in force
            return None
        return broker_env(write_openssl_conf(self._dir))

    def _wait_listening(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        """Poll (no sleep-for-logic: each poll is bounded and the loop has a deadline) for a LISTEN socket.

        psutil reads the process's sockets, so no probe connection pollutes the log with a TLS error.
        """
        deadline = time.monotonic() + _START_DEADLINE_S
        ps = psutil.Process(proc.pid)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                for conn in ps.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr[1] == port:
                        return True
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return False
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.01)  # sleep-ok: bounded 10 ms poll interval while mosquitto binds
        return False

    def _start_relay(self, proc: subprocess.Popen[bytes]) -> tuple[subprocess.Popen[bytes], BrokerLogReader]:
        """mosquitto's stderr -> the relay's stdin; the relay's stdout -> a BrokerLogReader here."""
        assert proc.stderr is not None
        try:
            relay = subprocess.Popen(log_relay.command(self.log_path), stdin=proc.stderr, stdout=subprocess.PIPE)
        except BaseException:
            self._reap(proc)
            raise
        finally:
            proc.stderr.close()  # the relay holds the read end now; EOF still follows mosquitto's exit
        assert relay.stdout is not None
        return relay, BrokerLogReader(relay.stdout, self.log_path)

    @staticmethod
    def _reap_relay(relay: subprocess.Popen[bytes], log: BrokerLogReader) -> None:
        """After mosquitto's exit: the relay reads to EOF, sends its last counts and exits by itself (within
        log_relay.FINAL_FLUSH_S); killed when it does not, so that it never outlives the backend."""
        log.join(_STOP_TIMEOUT_S + log_relay.FINAL_FLUSH_S)
        try:
            relay.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
        log.join()

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()

    def _log_tail(self, n: int = 5) -> str:
        log = self._log
        return log.tail(n) if log is not None else ""

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

