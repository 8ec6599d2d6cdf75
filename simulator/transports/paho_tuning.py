"""Two process-wide changes to paho-mqtt 2.2 that keep its semantics and remove its largest per-message costs.

paho gives every outgoing message an MQTTMessageInfo with its own `threading.Condition()`, only so that a caller
may `wait_for_publish()`. Under gevent's monkey-patching that is a gevent RLock + Condition per publish: the
profile of the lean transport at 1,000 devices (bench/profile_hot_path.py) put 12.8% of all CPU in
`LockType.__init__` from `MQTTMessageInfo.__init__`. Here every MQTTMessageInfo shares one Condition and
`_set_as_published` wakes all waiters (`notify_all`); each waiter re-checks its own `_published` flag in
paho's own wait loop, so `wait_for_publish()` still returns exactly when its message is published. Nothing
on the wire changes. fleetsim's transports never wait; the SDK (astarte/device/device_mqtt.py) neither. The lock
is taken only while some thread waits (`_WAITERS`), so a message nobody waits for costs no lock at all.

Second (`install_shared_ack_fields`): for MQTT 3.1.1 every PUBACK/PUBREC/PUBREL/PUBCOMP that paho decodes
builds a fresh MQTT 5 `ReasonCode` and `Properties` (paho/mqtt/_packet.py `_decode_mid_reason_prop`), which a
3.1.1 packet never carries: 5.5% of the generator's CPU in the rebooting-campaign profile
(bench/campaign_capacity.py --profile; `Properties.__init__` alone 3.3%). A 3.1.1 ack now gets one shared,
default instance per packet type; MQTT 5 packets are decoded as before. The callbacks receive the same values
(success, no properties); none of fleetsim's callbacks keeps or mutates them.
"""

from __future__ import annotations

import threading
from typing import Any

from paho.mqtt import client as paho_client
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["install_shared_ack_fields", "install_shared_message_condition", "shared_ack_fields", "shared_properties",
           "shared_reason_code"]

_SHARED = threading.Condition()
# Threads inside wait_for_publish (changed under _SHARED). With none, a message published only sets its flag:
# taking the (gevent-patched) Condition's lock to wake nobody cost a lock round trip per message.
_WAITERS = 0


class _SharedConditionInfo(paho_client.MQTTMessageInfo):
    __slots__ = ()

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self._published = False
        self._condition = _SHARED
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def wait_for_publish(self, timeout: float | None = None) -> None:
        global _WAITERS
        with _SHARED:
            _WAITERS += 1
        try:
            super().wait_for_publish(timeout)
        finally:
            with _SHARED:
                _WAITERS -= 1

    def _set_as_published(self) -> None:
        # The flag first, then the count: a waiter counted itself before it reads the flag (under _SHARED), so
        # either it sees the flag set or the publisher sees it counted and wakes it.
        self._published = True
        if _WAITERS:
            with _SHARED:
                _SHARED.notify_all()


def install_shared_message_condition() -> None:
    """Idempotent; affects every paho client created or publishing afterwards in this process."""
    paho_client.MQTTMessageInfo = _SharedConditionInfo  # type: ignore[misc]


_ORIGINAL_DECODE: Any = None
_SHARED_FIELDS: dict[int, tuple[ReasonCode, Properties]] = {}


def _decode_mid_reason_prop(packet_type: int, packet: bytes | bytearray,
                            protocol: MQTTProtocolVersion) -> tuple[int, ReasonCode, Properties]:
    if protocol == MQTTProtocolVersion.MQTTv5 or len(packet) != 2:
        return _ORIGINAL_DECODE(packet_type, packet, protocol)  # type: ignore[no-any-return]
    fields = shared_ack_fields(packet_type)
    return (packet[0] << 8) | packet[1], fields[0], fields[1]


def shared_ack_fields(packet_type: int) -> tuple[ReasonCode, Properties]:
    """The one default (success, no properties) ReasonCode and Properties of an MQTT 3.1.1 ack type
    (paho.mqtt.packettypes.PacketTypes: PUBACK 4 ... PUBCOMP 7)."""
    fields = _SHARED_FIELDS.get(packet_type)
    if fields is None:
        fields = _SHARED_FIELDS[packet_type] = (ReasonCode(packet_type), Properties(packet_type))  # type: ignore[no-untyped-call]
    return fields


_SHARED_CODES: dict[tuple[int, int], ReasonCode] = {}
_SHARED_PROPERTIES: dict[int, Properties] = {}


def shared_properties(packet_type: int) -> Properties:
    """The one empty Properties of a packet type, what paho builds afresh for each 3.1.1 CONNACK and SUBACK
    (an MQTT 3.1.1 packet carries none); no fleetsim callback keeps or mutates it."""
    props = _SHARED_PROPERTIES.get(packet_type)
    if props is None:
        props = _SHARED_PROPERTIES[packet_type] = Properties(packet_type)  # type: ignore[no-untyped-call]
    return props


def shared_reason_code(packet_type: int, identifier: int) -> ReasonCode:
    """One shared ReasonCode per (packet type, value): what paho builds afresh for each 3.1.1 CONNACK, SUBACK
    granted QoS and DISCONNECT (`ReasonCode(type, identifier=...)`; equal by value, as paho compares them).
    Bounded: at most 256 values per packet type. KeyError for a value the type does not define, as paho."""
    key = (packet_type, identifier)
    code = _SHARED_CODES.get(key)
    if code is None:
        code = _SHARED_CODES[key] = ReasonCode(packet_type, identifier=identifier)
    return code


def install_shared_ack_fields() -> None:
    """Idempotent; MQTT 3.1.1 acks decoded afterwards in this process share their (empty) MQTT 5 fields."""
    global _ORIGINAL_DECODE
    from paho.mqtt import _packet

    if _ORIGINAL_DECODE is None:
        _ORIGINAL_DECODE = _packet._decode_mid_reason_prop
        _packet._decode_mid_reason_prop = _decode_mid_reason_prop
