"""Agent JWT (a_pa claim) checks and the device registry journal (no network)."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt

from simulator.backend.jwt_tokens import AgentTokens
from simulator.backend.pairing import DeviceRegistry, is_device_id


def test_agent_token_round_trip_and_scopes(tmp_path: Path) -> None:
    tokens = AgentTokens(tmp_path)
    token = tokens.issue_agent_token()
    assert stat.S_IMODE(tokens.key_path.stat().st_mode) == 0o600
    assert jwt.decode(token, options={"verify_signature": False})["a_pa"] == [".*::.*"]
    assert tokens.check(token)
    assert tokens.check(token, "DELETE", "agent/devices/x")
    narrow = tokens.issue_agent_token(paths=("GET::.*",))
    assert tokens.authorise(narrow, "POST", "agent/devices") == "forbidden"
    assert tokens.authorise(narrow, "GET", "agent/devices") == "ok"
    # Same key file => tokens stay valid across instances (a backend restart with the same state dir).
    assert AgentTokens(tmp_path).check(token)


def test_foreign_expired_and_malformed_tokens_are_unauthorized(tmp_path: Path) -> None:
    tokens = AgentTokens(tmp_path / "a")
    foreign = AgentTokens(tmp_path / "b").issue_agent_token()
    assert tokens.authorise(foreign, "POST", "agent/devices") == "unauthorized"
    expired = jwt.encode({"a_pa": [".*::.*"], "iat": 1, "exp": 2}, tokens._private_key(), algorithm="ES256")
    assert not tokens.check(expired)
    assert not tokens.check("not.a.jwt")
    no_claim = jwt.encode({"iat": 1}, tokens._private_key(), algorithm="ES256")
    assert not tokens.check(no_claim)


def test_registry_journal_replays(tmp_path: Path) -> None:
    journal = tmp_path / "devices.jsonl"
    reg = DeviceRegistry(journal)
    s1 = reg.register("dev-a")
    s2 = reg.register("dev-b")
    assert s1 and s2
    reg.confirm("dev-a")
    assert reg.register("dev-a") is None  # confirmed: already registered
    assert reg.unregister("dev-b")
    reg.close()
    assert s1 not in journal.read_text()  # only hashes are written
    again = DeviceRegistry(journal)
    assert again.authenticate("dev-a", s1) and again.status("dev-a") == "confirmed"
    assert not again.authenticate("dev-b", s2)
    assert len(again) == 1
    again.close()


def test_device_id_shape() -> None:
    assert is_device_id("AAAAAAAAAAAAAAAAAAAAAA")
    assert not is_device_id("AAAAAAAAAAAAAAAAAAAAA")
    assert not is_device_id("AAAAAAAAAAAAAAAAAAAA!!")
    assert not is_device_id(42)
