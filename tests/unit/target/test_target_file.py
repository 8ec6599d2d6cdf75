"""The real-Astarte target file: fields, JWT signing, one clear error per problem with file:line."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from simulator.errors import ConfigErrors
from simulator.generator.target_file import load_target_file, observer_for, read_target_file
from simulator.observers.amqp_trigger import AmqpTriggerObserver
from simulator.observers.webhook_trigger import WebhookObserver

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJhX3BhIjpbIi4qOjouKiJdfQ.c2ln"


def _write(tmp_path: Path, text: str, name: str = "target.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_minimal_target_with_agent_jwt(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = _write(
        tmp_path,
        f"pairing_url: https://api.example.com/pairing/\nrealm: staging\nagent_jwt: {TOKEN}\n"
        "ca_file: ca.pem\n",
    )
    info = load_target_file(path, tmp_path / "state")
    assert (info.kind, info.realm, info.pairing_url, info.agent_jwt) == (
        "astarte",
        "staging",
        "https://api.example.com/pairing",
        TOKEN,
    )
    assert info.ca_file == str(tmp_path / "ca.pem")
    assert info.credentials_dir == str(tmp_path / "state" / "credentials")
    assert observer_for(info) is None
    assert info.redacted()["agent_jwt"] == "<redacted>"


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [(ec.generate_private_key(ec.SECP256R1()), "ES256"), (rsa.generate_private_key(65537, 2048), "RS256")],
)
def test_realm_private_key_signs_an_agent_token(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, algorithm: str
) -> None:
    (tmp_path / "realm.key").write_bytes(_pem(key))
    path = _write(
        tmp_path,
        "pairing_url: http://127.0.0.1:4003/pairing\nrealm: qa\nrealm_private_key: realm.key\n"
        "ignore_ssl_errors: true\n",
    )
    info = load_target_file(path, tmp_path)
    assert jwt.get_unverified_header(info.agent_jwt)["alg"] == algorithm
    claims = jwt.decode(info.agent_jwt, key.public_key(), algorithms=[algorithm])
    assert claims["a_pa"] == [".*::.*"]
    assert info.ignore_ssl_errors is True


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "pairing_url: ftp://api.example.com/pairing\n"  # 1: bad scheme
        "realm: Bad-Realm\n"  # 2
        "agent_jwt: not-a-jwt\n"  # 3
        "broker_url: mqtts://broker:99999/\n"  # 4: bad port
        "ca_file: missing.pem\n"  # 5
        "observr: {}\n",
    )  # 6: typo
    with pytest.raises(ConfigErrors) as err:
        load_target_file(path, tmp_path)
    lines = str(err.value).splitlines()
    assert (
        lines[0]
        == f"{path}:1: pairing_url: scheme must be http or https, got 'ftp://api.example.com/pairing'"
    )
    assert lines[1].startswith(f"{path}:2: realm: not an Astarte realm name")
    assert lines[2] == f"{path}:3: agent_jwt: not a JWT (three dot-separated parts)"
    assert lines[3].startswith(f"{path}:4: broker_url: bad URL 'mqtts://broker:99999/'")
    assert lines[4].startswith(f"{path}:5: ca_file: no such file")
    assert lines[5] == f"{path}:6: observr: unknown key 'observr'; did you mean 'observer'?"


def test_missing_required_fields_and_both_credentials(tmp_path: Path) -> None:
    path = _write(tmp_path, f"agent_jwt: {TOKEN}\nrealm_private_key: k.pem\n")
    with pytest.raises(ConfigErrors) as err:
        load_target_file(path, tmp_path)
    text = str(err.value)
    assert "pairing_url: missing (required)" in text and "realm: missing (required)" in text
    assert "give exactly one of agent_jwt or realm_private_key" in text


def test_environment_variables_are_expanded_or_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, "pairing_url: https://${HOST}/pairing\nrealm: qa\nagent_jwt: ${JWT}\n")
    info = read_target_file(path, tmp_path, env={"HOST": "api.example.com", "JWT": TOKEN}).info
    assert info.pairing_url == "https://api.example.com/pairing" and info.agent_jwt == TOKEN
    with pytest.raises(ConfigErrors, match=r":3: agent_jwt: environment variable JWT is not set"):
        read_target_file(path, tmp_path, env={"HOST": "h"})


def test_observers(tmp_path: Path) -> None:
    amqp = _write(
        tmp_path,
        f"pairing_url: https://a.example.com/pairing\nrealm: qa\nagent_jwt: {TOKEN}\n"
        "observer:\n  kind: amqp\n  url: amqp://guest:guest@127.0.0.1:5672/%2F_qa\n"
        "  exchange: astarte_events_qa_fleetsim\n  queue: q1\n",
        "a.yaml",
    )
    observer = observer_for(load_target_file(amqp, tmp_path))
    assert isinstance(observer, AmqpTriggerObserver)
    assert (observer.exchange, observer.queue, observer.routing_key, observer.realm) == (
        "astarte_events_qa_fleetsim",
        "q1",
        "fleetsim",
        "qa",
    )
    hook = _write(
        tmp_path,
        f"pairing_url: https://a.example.com/pairing\nrealm: qa\nagent_jwt: {TOKEN}\n"
        "observer: {kind: webhook, host: 127.0.0.1, port: 8099, path: /hook}\n",
        "w.yaml",
    )
    webhook = observer_for(load_target_file(hook, tmp_path))
    assert isinstance(webhook, WebhookObserver) and webhook.url == "http://127.0.0.1:8099/hook"
    bad = _write(
        tmp_path,
        f"pairing_url: https://a.example.com/pairing\nrealm: qa\nagent_jwt: {TOKEN}\n"
        "observer:\n  kind: amqp\n  url: http://x\n  exchange: mine\n  port: 1\n",
        "b.yaml",
    )
    with pytest.raises(ConfigErrors) as err:
        load_target_file(bad, tmp_path)
    text = str(err.value)
    assert f"{bad}:8: observer.port: not a setting of the amqp observer" in text
    assert f"{bad}:6: observer.url: scheme must be amqp or amqps" in text
    assert f"{bad}:7: observer.exchange: Astarte publishes only to astarte_events_<realm>_<suffix>" in text
