"""Bad input through the real CLI (`python -m simulator run ...` in a subprocess): one clear line naming the
file/line/field or the flag, exit code 2, no traceback, and nothing left running (issue 9 item 4)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import jwt
import psutil
import pytest

from simulator.backend.server import EmbeddedBackend
from simulator.plan import build_plan
from simulator.scenario.loader import load_scenario
from simulator.transports.credentials import target_key
from tests.conftest import require_service
from tests.integration.engine.conftest import run_fleetsim

QUICKSTART = Path(__file__).resolve().parents[3] / "scenarios" / "quickstart.yaml"
A_JWT = jwt.encode({"a_pa": [".*::.*"]}, "k" * 32, algorithm="HS256")  # well-formed; no target accepts it


def _run(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    """Run with results and state under tmp_path/cli; no process may be left that mentions that dir."""
    scope = tmp_path / "cli"
    proc = run_fleetsim(["run", *args, "--results", str(scope / "results"), "--state-dir",
                         str(scope / "state"), "--quiet"], cwd=tmp_path, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    own = [ln for ln in proc.stderr.splitlines() if not ln.startswith("WARNING ")]  # per-device log lines
    leftovers = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                 if any(str(scope) in part for part in (p.info["cmdline"] or []))]
    assert leftovers == [], leftovers
    return proc.returncode, own


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize(("flags", "message"), [
    (["--devices", "-5"], "--devices: fleet.devices: must be between 1 and 10,000,000, got -5"),
    (["--duration", "abc"],
     "--duration: duration: expected a duration like 30s, 5m, 250ms, 1h or a number of seconds, got 'abc'"),
    (["--processes", "0"], "fleetsim run: --processes: must be at least 1, got 0"),
])
def test_bad_flags(tmp_path: Path, flags: list[str], message: str) -> None:
    code, lines = _run(tmp_path, str(QUICKSTART), *flags)
    assert (code, lines) == (2, [message])
    assert not (tmp_path / "cli" / "results").exists()


def test_bad_scenario_yaml_names_file_line_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfleet: {devices: abc}\n")
    code, lines = _run(tmp_path, str(bad))
    assert (code, lines) == (2, [f"{bad}:2: fleet.devices: expected an integer, got a string"])


def test_bad_fault_parameter(tmp_path: Path) -> None:
    bad = tmp_path / "fault.yaml"
    bad.write_text("name: f\nfleet: {devices: 2}\nduration: 2s\n"
                   "faults: [{kind: network_delay, at: 1s, params: {delay_ms: fast}}]\n")
    code, lines = _run(tmp_path, str(bad))
    assert (code, lines) == (2, [f"{bad}: faults[0].params.delay_ms: expected a number, got 'fast'"])


@pytest.mark.parametrize(("text", "message"), [
    ("pairing_url: https://127.0.0.1:1/pairing\nagent_jwt: {jwt}\n", "{file}:1: realm: missing (required)"),
    ("pairing_url: ftp://127.0.0.1:1/pairing\nrealm: r\nagent_jwt: {jwt}\n",
     "{file}:1: pairing_url: scheme must be http or https, got 'ftp://127.0.0.1:1/pairing'"),
    ("pairing_url: https://127.0.0.1:99999/pairing\nrealm: r\nagent_jwt: {jwt}\n",
     "{file}:1: pairing_url: bad URL 'https://127.0.0.1:99999/pairing': Port out of range 0-65535 "
     "(port must be 1..65535)"),
])
def test_bad_target_file(tmp_path: Path, text: str, message: str) -> None:
    target = tmp_path / "target.yaml"
    target.write_text(text.format(jwt=A_JWT))
    code, lines = _run(tmp_path, str(QUICKSTART), "--target", str(target), "--devices", "2")
    assert (code, lines) == (2, [message.format(file=target)])


def test_unreachable_pairing_api(tmp_path: Path) -> None:
    target = tmp_path / "target.yaml"
    target.write_text(f"pairing_url: https://127.0.0.1:{_free_port()}/pairing\nrealm: fleetsim\n"
                      f"agent_jwt: {A_JWT}\n")
    code, lines = _run(tmp_path, str(QUICKSTART), "--target", str(target), "--devices", "2",
                       "--duration", "2s")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("fleetsim run: no device came online (2 failed); first: PairingError: ")
    assert "Connection refused" in lines[0]


def _run_with_target(tmp_path: Path, realm: str = "fleetsim", ca_file: Path | None = None) -> tuple[int, list[str]]:
    """Run the quickstart (2 devices) through a target file naming a live embedded backend, with `realm` and
    `ca_file` (the backend's CA when None) as given."""
    require_service("mosquitto", binary="mosquitto")
    with EmbeddedBackend(tmp_path / "backend") as backend:
        info = backend.info
        assert info is not None
        target = tmp_path / "target.yaml"
        target.write_text(f"pairing_url: {info.pairing_url}\nrealm: {realm}\nagent_jwt: {info.agent_jwt}\n"
                          f"ca_file: {ca_file or info.ca_file}\n")
        return _run(tmp_path, str(QUICKSTART), "--target", str(target), "--devices", "2", "--duration", "2s")


def test_wrong_realm(tmp_path: Path) -> None:
    code, lines = _run_with_target(tmp_path, realm="wrongrealm")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("fleetsim run: no device came online (2 failed); first: PairingError: ")
    assert "/pairing/v1/wrongrealm/agent/devices: HTTP 404" in lines[0]


def _device_ids(tmp_path: Path, devices: int) -> tuple[str, ...]:
    scenario = load_scenario(str(QUICKSTART), {"devices": str(devices)}, env={})
    return tuple(build_plan(scenario).device_ids)


def test_corrupted_credentials_cache(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    cache = tmp_path / "cli" / "state" / "credentials" / target_key("fleetsim", "https://127.0.0.1:1/pairing")
    for device_id in _device_ids(tmp_path, 2):
        (cache / device_id).mkdir(parents=True)
        (cache / device_id / "credentials.json").write_text("{not json")
    code, lines = _run(tmp_path, str(QUICKSTART), "--devices", "2", "--duration", "2s")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("fleetsim run: no device came online (2 failed); first: CorruptCredentials: ")
    assert "credentials.json: corrupted credentials cache file" in lines[0]


def test_foreign_certificate_in_cache_is_replaced(tmp_path: Path) -> None:
    """A cached certificate from another CA (or expired) is not an input error: Pairing's verify refuses
    it, the device obtains a new one (pairing_client.onboard), and the run goes on."""
    require_service("mosquitto", binary="mosquitto")
    from simulator.backend.ca import LocalCA
    from simulator.transports.credentials import CredentialsCache, DeviceCredentials

    foreign = LocalCA(tmp_path / "foreign-ca")
    foreign.ensure()
    cache = CredentialsCache(tmp_path / "cli" / "state" / "credentials",
                             target_key("fleetsim", "https://127.0.0.1:1/pairing"))
    ids = _device_ids(tmp_path, 2)
    planted: dict[str, bytes] = {}
    for device_id in ids:
        cert, key = foreign.issue_client_cert(f"fleetsim/{device_id}")
        planted[device_id] = Path(cert).read_bytes()
        cache.put(device_id, DeviceCredentials(secret="not-a-secret-of-this-backend",
                                               key_pem=Path(key).read_bytes(), cert_pem=planted[device_id]))
    code, lines = _run(tmp_path, str(QUICKSTART), "--devices", "2", "--duration", "3s")
    assert code in (0, 1), lines  # a run happened (1 = a threshold breached on so short a run)
    summaries = list((tmp_path / "cli" / "results").glob("*/summary.json"))
    assert len(summaries) == 1
    fleet = json.loads(summaries[0].read_text())["extra"]["fleet"]
    assert fleet["online"] == 2 and fleet["failed"] == 0
    for device_id in ids:
        creds = cache.get(device_id)
        assert creds is not None and creds.cert_pem not in (None, planted[device_id])


def test_foreign_ca_bundle_in_the_target_file(tmp_path: Path) -> None:
    """The target's certificate is not from the CA the target file trusts: refused with the TLS cause."""
    from simulator.backend.ca import LocalCA

    LocalCA(tmp_path / "foreign-ca").ensure()
    code, lines = _run_with_target(tmp_path, ca_file=tmp_path / "foreign-ca" / "ca.crt")
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("fleetsim run: no device came online (2 failed); first: PairingError: ")
    assert "TLS error (check ca_file / ignore_ssl_errors)" in lines[0]
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]


@pytest.mark.parametrize(("broker_url", "message"), [
    ("tcp://127.0.0.1:8883/", "broker_url: scheme must be mqtts or ssl, got 'tcp://127.0.0.1:8883/'"),
    ("mqtts://127.0.0.1:0/", "broker_url: port must be 1..65535, got 0 in 'mqtts://127.0.0.1:0/'"),
    ("mqtts://127.0.0.1:70000/",
     "broker_url: bad URL 'mqtts://127.0.0.1:70000/': Port out of range 0-65535 (port must be 1..65535)"),
])
def test_broker_url_with_bad_scheme_or_port(tmp_path: Path, broker_url: str, message: str) -> None:
    target = tmp_path / "target.yaml"
    target.write_text(f"pairing_url: https://127.0.0.1:1/pairing\nrealm: r\nagent_jwt: {A_JWT}\n"
                      f"broker_url: {broker_url}\n")
    code, lines = _run(tmp_path, str(QUICKSTART), "--target", str(target), "--devices", "2")
    assert (code, lines) == (2, [f"{target}:4: {message}"])
    assert not (tmp_path / "cli" / "results").exists()


def test_expired_certificate_in_cache_is_replaced(tmp_path: Path) -> None:
    """A cached certificate of this very backend that has expired: /verify says invalid, the device gets a
    new one (pairing_client.onboard) and the run goes on, as with a foreign one."""
    require_service("mosquitto", binary="mosquitto")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from simulator.backend.ca import LocalCA
    from simulator.transports.credentials import CredentialsCache
    from simulator.transports.pairing_client import build_csr

    code, lines = _run(tmp_path, str(QUICKSTART), "--devices", "2", "--duration", "2s")
    assert code in (0, 1), lines  # first run: registered, certificates cached
    ca = LocalCA(tmp_path / "cli" / "state" / "backend")
    cache = CredentialsCache(tmp_path / "cli" / "state" / "credentials",
                             target_key("fleetsim", "https://127.0.0.1:1/pairing"))
    ids = _device_ids(tmp_path, 2)
    expired: dict[str, bytes] = {}
    for device_id in ids:
        creds = cache.get(device_id)
        assert creds is not None and creds.key_pem is not None
        key = serialization.load_pem_private_key(creds.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        cn = f"fleetsim/{device_id}"
        expired[device_id] = ca.sign_csr(build_csr("fleetsim", device_id, key), cn, validity_s=-60)
        assert ca.verify_cert(expired[device_id], cn)[0] is False
        cache.put(device_id, dataclasses.replace(creds, cert_pem=expired[device_id]))
    for old in (tmp_path / "cli" / "results").iterdir():
        shutil.rmtree(old)
    code, lines = _run(tmp_path, str(QUICKSTART), "--devices", "2", "--duration", "3s")
    assert code in (0, 1), lines
    (summary,) = (tmp_path / "cli" / "results").glob("*/summary.json")
    fleet = json.loads(summary.read_text())["extra"]["fleet"]
    assert fleet["online"] == 2 and fleet["failed"] == 0
    for device_id in ids:
        creds = cache.get(device_id)
        assert creds is not None and creds.cert_pem not in (None, expired[device_id])
