"""No secret material in a run's results or logs; key files and the credentials cache are private (issue 9).

Runs a small quickstart (5 devices, 5 s, embedded backend), then scans every file of the results directory,
every *.log under the state directory, and the CLI's stdout/stderr for: JWTs (the agent token), the devices'
credentials secrets (read back from the cache), and PEM private keys. Then checks modes: CA/server/admin/
realm keys and every credentials-cache file 0600, cache directories 0700.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from tests.conftest import require_service
from tests.integration.engine.conftest import run_fleetsim

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_results_and_logs_hold_no_secret(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    results, state = tmp_path / "results", tmp_path / "state"
    proc = run_fleetsim(["run", str(QUICKSTART), "--devices", "5", "--duration", "5s",
                         "--results", str(results), "--state-dir", str(state), "--quiet"], cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr  # 1: a threshold breached on so short a run; still a run
    secrets = [json.loads(p.read_text())["credentials_secret"].encode()
               for p in (state / "credentials").rglob("credentials.json")]
    assert len(secrets) == 5  # the cache really holds what we look for
    scanned = {"<stdout>": proc.stdout.encode(), "<stderr>": proc.stderr.encode()}
    files = [p for p in results.rglob("*") if p.is_file()] + list(state.rglob("*.log"))
    assert any(p.name == "summary.json" for p in files)
    scanned.update({str(p): p.read_bytes() for p in files})
    found = []
    for name, data in scanned.items():
        if JWT.search(data):
            found.append(f"{name}: a JWT")
        if PEM_KEY.search(data):
            found.append(f"{name}: a PEM private key")
        found += [f"{name}: a credentials secret" for s in secrets if s in data]
    assert found == []


def test_keys_and_credentials_cache_are_private(tmp_path: Path) -> None:
    require_service("mosquitto", binary="mosquitto")
    results, state = tmp_path / "results", tmp_path / "state"
    proc = run_fleetsim(["run", str(QUICKSTART), "--devices", "2", "--duration", "2s",
                         "--results", str(results), "--state-dir", str(state), "--quiet"], cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    keys = list((state / "backend").glob("*.key"))
    assert {p.name for p in keys} >= {"ca.key", "server.key"}
    cache = state / "credentials"
    cache_files = [p for p in cache.rglob("*") if p.is_file()]
    cache_dirs = [cache, *(p for p in cache.rglob("*") if p.is_dir())]
    assert len([p for p in cache_files if p.name == "device.key"]) == 2
    loose = [f"{p} {_mode(p):o}" for p in [*keys, *cache_files] if _mode(p) != 0o600]
    loose += [f"{p} {_mode(p):o}" for p in cache_dirs if _mode(p) != 0o700]
    assert loose == []


def test_a_target_file_run_leaks_neither_agent_token_nor_observer_password(tmp_path: Path) -> None:
    """The secrets of a real-Astarte target file (agent JWT, an AMQP password given via ${ENV}) stay out of
    results and output; here the target is the embedded backend addressed through a target file."""
    require_service("mosquitto", binary="mosquitto")
    import os
    import socket

    from simulator.backend.server import EmbeddedBackend

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results, state = tmp_path / "results", tmp_path / "state"
    with EmbeddedBackend(tmp_path / "backend") as backend:
        info = backend.info
        assert info is not None
        target = tmp_path / "target.yaml"
        target.write_text(f"pairing_url: {info.pairing_url}\nrealm: fleetsim\nagent_jwt: ${{FLEETSIM_TEST_JWT}}\n"
                          f"ca_file: {info.ca_file}\nobserver: {{kind: webhook, host: 127.0.0.1, port: {port}}}\n")
        os.environ["FLEETSIM_TEST_JWT"] = info.agent_jwt
        try:
            proc = run_fleetsim(["run", str(QUICKSTART), "--target", str(target), "--devices", "2",
                                 "--duration", "2s", "--results", str(results), "--state-dir", str(state),
                                 "--quiet"], cwd=tmp_path)
        finally:
            del os.environ["FLEETSIM_TEST_JWT"]
    assert proc.returncode in (0, 1), proc.stderr  # 1: nothing posted to the webhook, `lost` breached
    token = info.agent_jwt.encode()
    files = [p for p in results.rglob("*") if p.is_file()] + list(state.rglob("*.log"))
    assert any(p.name == "summary.json" for p in files)
    scanned = {"<stdout>": proc.stdout.encode(), "<stderr>": proc.stderr.encode()}
    scanned.update({str(p): p.read_bytes() for p in files})
    found = [f"{name}: the agent JWT" for name, data in scanned.items() if token in data or JWT.search(data)]
    assert found == []
