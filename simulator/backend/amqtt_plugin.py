"""Identity, authentication and the per-device topic ACL of the pip-only (amqtt 0.12.1) broker.

Astarte's broker (VerneMQ + astarte_vmq_plugin, docs/protocol.md section 1) identifies a client by its TLS client
certificate's CN `<realm>/<device_id>` and lets a device publish and subscribe only under
`<realm>/<device_id>`; fleetsim adds one privileged identity (`admin_cn`: the collector and the campaign
driver) that may do everything.
This module holds that policy as pure functions (unit-testable without a broker), the TLS-handshake refusal
classifier, and the amqtt plugin class that the broker loads from its config (`plugins:` section, amqtt
plugins/manager.py `_load_str_plugin`).

Client ids: astarte-device-sdk 0.14.0 creates `mqtt.Client()` with no client id
(astarte/device/device_mqtt.py `__setup_mqtt_client`), so paho 2.2 sends an empty id with clean session
(paho/mqtt/client.py `__init__`) and the broker assigns one. Other clients use the Astarte convention
`<realm>/<device_id>`. A device may therefore connect with an empty id or its full CN; anything else is
refused, so a device can never present (and take over) another client's id. The bare device id is not
accepted: it has no `/`, so it could equal an admin client id such as "collector" and knock that session out.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

__all__ = [
    "IDENTITY_KEY",
    "REFUSAL_KINDS",
    "FleetsimAuthPlugin",
    "Identity",
    "Policy",
    "RefusalSink",
    "classify_tls_error",
    "cn_from_peercert",
]

_log = logging.getLogger("fleetsim.amqtt")

# Where the authenticated identity is cached on amqtt's Session (`Session.attributes` is the documented place
# for plugin-owned, namespaced state; amqtt session.py).
IDENTITY_KEY = "fleetsim.identity"

# Every refusal kind the broker counts (the parent's `refusals()` dict uses these keys).
REFUSAL_KINDS = (
    "no_cert",  # TLS: the client sent no certificate (CERT_REQUIRED)
    "bad_cert",  # TLS: certificate not from our CA, expired, or otherwise failing verification
    "tls_error",  # TLS: any other handshake failure (plain MQTT on the TLS port, wrong version...)
    "bad_cn",  # valid certificate whose CN is neither the admin CN nor `<realm>/<device_id>`
    "client_id_mismatch",  # device presented a client id that is not its own
    "client_id_reuse",  # ...and that id belongs to a live session (a takeover attempt)
    "acl_publish",  # device published outside its prefix (dropped, not delivered)
    "acl_subscribe",  # device subscribed outside its prefix (SUBACK 0x80)
)

# A device id is 128 bits of unpadded base64url (22 characters, docs/protocol.md section 1); tests and replays use
# shorter ids, so accept 1-64 base64url characters. Crucially none of `/ + #` can appear.
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# (kind, detail) -> None; called once per refusal, on the broker's event loop (must not block).
RefusalSink = Callable[[str, str], None]


def _no_sink(kind: str, detail: str) -> None:
    _log.warning("refused %s: %s", kind, detail)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is: its certificate CN and, for a device, its topic prefix `<realm>/<device_id>`."""

    cn: str
    device_id: str | None  # None for the admin

    @property
    def is_admin(self) -> bool:
        return self.device_id is None

    @property
    def prefix(self) -> str:
        return self.cn


def cn_from_peercert(peercert: dict[str, Any] | None) -> str | None:
    """The subject CN of a verified peer certificate, from `SSLObject.getpeercert()` (None if absent).

    The dict shape is `{"subject": ((("organizationName", "Devices"),), (("commonName", "realm/id"),))}`
    (Python ssl docs, `SSLSocket.getpeercert`). Several CNs are ambiguous: treated as none.
    """
    if not peercert:
        return None
    cns = [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return cns[0] if len(cns) == 1 else None


def classify_tls_error(exc: BaseException) -> str:
    """Refusal kind of a server-side TLS handshake failure (OpenSSL reason codes, as exposed by `ssl`)."""
    reason = getattr(exc, "reason", None) or ""
    if reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"):
        return "no_cert"
    if isinstance(exc, ssl.SSLCertVerificationError) or reason in (
        "CERTIFICATE_VERIFY_FAILED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    ):
        return "bad_cert"
    return "tls_error"


class Policy:
    """The pure rules: who may connect with which client id, and which topics each identity may touch."""

    __slots__ = ("admin_cn", "realm")

    def __init__(self, realm: str, admin_cn: str) -> None:
        if not realm or "/" in realm or "+" in realm or "#" in realm:
            raise ValueError(f"realm {realm!r}: must be non-empty without '/', '+' or '#'")
        if not admin_cn:
            raise ValueError("admin_cn: must be non-empty")
        self.realm = realm
        self.admin_cn = admin_cn

    def identify(self, cn: str | None) -> Identity | None:
        """The identity of a certificate CN, or None when the CN is not one we admit (refusal `bad_cn`)."""
        if cn is None:
            return None
        if cn == self.admin_cn:
            return Identity(cn=cn, device_id=None)
        realm, sep, device_id = cn.partition("/")
        if sep and realm == self.realm and _DEVICE_ID.fullmatch(device_id):
            return Identity(cn=cn, device_id=device_id)
        return None

    def client_id_allowed(self, identity: Identity, client_id: str, client_id_is_random: bool) -> bool:
        """May `identity` connect with `client_id`? The admin may use any id (it is trusted and runs several
        connections: collector, campaign driver); a device only an empty (broker-assigned) id or its CN."""
        if identity.is_admin:
            return True
        if client_id_is_random:  # empty id in CONNECT; amqtt generated one (amqtt mqtt/connect.py)
            return True
        return client_id == identity.cn

    def topic_allowed(self, identity: Identity, topic: str) -> bool:
        """A topic name (publish/receive) or filter (subscribe) is allowed for a device only when it is its
        prefix itself or starts with `<prefix>/`; wildcards after the prefix stay inside it."""
        if identity.is_admin:
            return True
        prefix = identity.prefix
        return topic == prefix or topic.startswith(prefix + "/")


def _identity_of(session: Session | None) -> Identity | None:
    if session is None:
        return None
    found = session.attributes.get(IDENTITY_KEY)
    return found if isinstance(found, Identity) else None


class FleetsimAuthPlugin(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt plugin: authenticate by client certificate CN, and enforce the per-device prefix ACL.

    The broker (simulator.backend.amqtt_main) vets every CONNECT *before* amqtt touches its session table and
    stores the identity in `session.attributes[IDENTITY_KEY]`; `authenticate` re-derives it from the TLS peer
    certificate (defence in depth: a session that reaches amqtt's own authentication step without a valid
    identity is refused). `sink` is set by the broker after loading to count refusals.
    """

    @dataclass
    class Config:
        realm: str = ""
        admin_cn: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.policy = Policy(self.config.realm, self.config.admin_cn)
        self.sink: RefusalSink = _no_sink

    def identity_for(self, session: Session) -> Identity | None:
        """Identity of `session` from its TLS peer certificate (None: not admitted)."""
        ssl_object = session.ssl_object
        peercert = ssl_object.getpeercert() if ssl_object is not None else None
        return self.policy.identify(cn_from_peercert(peercert))

    async def authenticate(self, *, session: Session) -> bool | None:
        if _identity_of(session) is not None:
            return True  # vetted (identity and client id) by the broker before amqtt saw the session
        identity = self.identity_for(session)
        if identity is None or not self.policy.client_id_allowed(identity, session.client_id or "", False):
            return False
        session.attributes[IDENTITY_KEY] = identity
        return True

    def check_topic(self, session: Session | None, topic: str | None, action: Action | None) -> bool:
        """Synchronous ACL decision; counts refused publishes and subscriptions."""
        identity = _identity_of(session)
        if identity is None or topic is None:
            return False
        if self.policy.topic_allowed(identity, topic):
            return True
        if action == Action.PUBLISH:
            self.sink("acl_publish", f"{identity.cn} -> {topic}")
        elif action == Action.SUBSCRIBE:
            self.sink("acl_subscribe", f"{identity.cn} -> {topic}")
        # Action.RECEIVE outside the prefix cannot happen once subscriptions are checked: not counted.
        return False

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        return self.check_topic(session, topic, action)
