"""The pure rules of the amqtt broker (no broker needed): identity from CN, client ids, topic prefix ACL."""

from __future__ import annotations

import ssl

import pytest

from simulator.backend.amqtt_plugin import Identity, Policy, classify_tls_error, cn_from_peercert

POLICY = Policy("fleetsim", "fleetsim-admin")
DEV = "2TBn-jNESuuHamE2Zo1anA"


def test_identity_from_cn() -> None:
    assert POLICY.identify("fleetsim-admin") == Identity("fleetsim-admin", None)
    assert POLICY.identify(f"fleetsim/{DEV}") == Identity(f"fleetsim/{DEV}", DEV)
    for refused in (None, "", "fleetsim", "fleetsim/", "other/" + DEV, f"fleetsim/{DEV}/x", "fleetsim/+",
                    "fleetsim/#", "fleetsim-admin2"):
        assert POLICY.identify(refused) is None, refused


def test_client_id_rules() -> None:
    device = Identity(f"fleetsim/{DEV}", DEV)
    admin = Identity("fleetsim-admin", None)
    assert POLICY.client_id_allowed(device, f"fleetsim/{DEV}", client_id_is_random=False)
    assert POLICY.client_id_allowed(device, "amqtt/abc", client_id_is_random=True)  # SDK 0.14.0 sends none
    assert not POLICY.client_id_allowed(device, DEV, client_id_is_random=False)
    assert not POLICY.client_id_allowed(device, "fleetsim/other", client_id_is_random=False)
    assert not POLICY.client_id_allowed(device, "collector", client_id_is_random=False)
    assert POLICY.client_id_allowed(admin, "collector", client_id_is_random=False)


def test_topic_prefix_acl() -> None:
    device = Identity(f"fleetsim/{DEV}", DEV)
    prefix = f"fleetsim/{DEV}"
    for allowed in (prefix, f"{prefix}/#", f"{prefix}/control/consumer/properties", f"{prefix}/+/event"):
        assert POLICY.topic_allowed(device, allowed), allowed
    refused_topics = ("fleetsim/#", "#", "fleetsim/+/x", f"{prefix}x/y", f"fleetsim/{DEV[:-1]}", f"x/{DEV}")
    for refused in refused_topics:
        assert not POLICY.topic_allowed(device, refused), refused
    assert POLICY.topic_allowed(Identity("fleetsim-admin", None), "#")


def test_cn_from_peercert() -> None:
    subject = ((("organizationName", "Devices"),), (("commonName", f"fleetsim/{DEV}"),))
    assert cn_from_peercert({"subject": subject}) == f"fleetsim/{DEV}"
    assert cn_from_peercert({}) is None
    assert cn_from_peercert(None) is None
    two = ((("commonName", "a"),), (("commonName", "b"),))
    assert cn_from_peercert({"subject": two}) is None  # ambiguous


def test_tls_error_classification() -> None:
    no_cert = ssl.SSLError(1, "peer did not return a certificate")
    no_cert.reason = "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert classify_tls_error(no_cert) == "no_cert"
    assert classify_tls_error(ssl.SSLCertVerificationError(1, "unable to get local issuer")) == "bad_cert"
    other = ssl.SSLError(1, "wrong version number")
    other.reason = "WRONG_VERSION_NUMBER"
    assert classify_tls_error(other) == "tls_error"


def test_bad_policy_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="realm"):
        Policy("a/b", "admin")
    with pytest.raises(ValueError, match="admin_cn"):
        Policy("fleetsim", "")
