"""mosquitto config/ACL generation, log parsing, broker selection, BackendInfo JSON (no processes)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from simulator.backend.broker import BrokerConfig
from simulator.backend.broker_select import select_broker
from simulator.backend.mosquitto import MosquittoBroker, parse_refusals
from simulator.backend_info import BackendInfo

CFG = BrokerConfig(
    "127.0.0.1",
    0,
    Path("/s/ca.crt"),
    Path("/s/server.crt"),
    Path("/s/server.key"),
    "fleetsim",
    state_dir=Path("/s"),
)


def test_acl_and_config_enforce_identity_and_prefix() -> None:
    broker = MosquittoBroker(CFG)
    assert broker._acl_text().splitlines() == [
        "user fleetsim-admin",
        "topic readwrite #",
        "",
        "pattern readwrite %u",
        "pattern readwrite %u/#",
    ]
    conf = broker._config_text(18883).splitlines()
    for line in (
        "require_certificate true",
        "use_identity_as_username true",
        "allow_anonymous false",
        "listener 18883 127.0.0.1",
        "cafile /s/ca.crt",
        "persistence false",
        "max_inflight_messages 0",  # no window (simulator/backend/mosquitto.py docstring)
        "log_dest stderr",
        "log_type debug",
        "acl_file /s/mosquitto/acl",
    ):
        assert line in conf


def test_parse_refusals_counts_by_kind() -> None:
    lines = [
        "1: Denied PUBLISH from x (d0, q1, r0, m1, 'fleetsim/other/t', ... (6 bytes))",
        "2: OpenSSL Error[0]: error:0A0000C7:SSL routines::peer did not return a certificate",
        "3: OpenSSL Error[0]: error:0A000086:SSL routines::certificate verify failed",
        "4: Client auto-1 disconnected, not authorised.",
        "5: Received PUBLISH from x",
        "6: Denied PUBLISH from y",
        # the other wording mosquitto 2.0.11 uses for the same refusals (where the handshake failed decides)
        "7: Client connection from 127.0.0.1 failed: error:0A000086:SSL routines::certificate verify failed.",
        "8: Client connection from 127.0.0.1 failed: error:0A0000C7:SSL routines::peer did not return a certificate.",
    ]
    assert parse_refusals(lines) == {
        "acl_publish": 2,
        "no_client_cert": 2,
        "bad_client_cert": 2,
        "not_authorised": 1,
    }


def test_select_broker() -> None:
    assert select_broker("mosquitto", CFG).name == "mosquitto"
    with pytest.raises(ValueError, match="unknown broker"):
        select_broker("vernemq", CFG)


def test_backend_info_json_round_trip() -> None:
    info = BackendInfo(
        "fleetsim",
        "https://127.0.0.1:1/pairing",
        "mqtts://127.0.0.1:2/",
        "mosquitto",
        "jwt",
        "/s/ca.crt",
        "/s/a.crt",
        "/s/a.key",
        "",
        "/s",
    )
    assert BackendInfo.from_json(info.to_json()) == info
    with_tls = dataclasses.replace(info, broker_tls="openssl")
    assert BackendInfo.from_json(with_tls.to_json()).broker_tls == "openssl"
    # A backend.json written before the field existed still reads, with the TLS "not recorded".
    old = json.loads(info.to_json())
    del old["broker_tls"]
    assert BackendInfo.from_json(json.dumps(old)) == info
    assert (info.broker_host, info.broker_port) == ("127.0.0.1", 2)
    assert info.client_env() == {"REQUESTS_CA_BUNDLE": "/s/ca.crt", "SSL_CERT_FILE": "/s/ca.crt"}
    with pytest.raises(ValueError, match="realm"):
        BackendInfo.from_json('{"pairing_url": "x"}')
