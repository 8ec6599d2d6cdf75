"""One process-wide change to paho-mqtt 2.2 that keeps its semantics and removes its largest per-message cost.

paho gives every outgoing message an MQTTMessageInfo with its own `threading.Condition()`, only so that a caller
may `wait_for_publish()`. Under gevent's monkey-patching that is a gevent RLock + Condition per publish: the
profile of the lean transport at 1,000 devices (bench/profile_hot_path.py) put 12.8% of all CPU in
`LockType.__init__` from `MQTTMessageInfo.__init__`. Here every MQTTMessageInfo shares one Condition and
`_set_as_published` wakes all waiters (`notify_all`); each waiter re-checks its own `_published` flag in
paho's own wait loop, so `wait_for_publish()` still returns exactly when its message is published. Nothing
on the wire changes. fleetsim's transports never wait; the SDK (astarte/device/device_mqtt.py) neither.
"""

from __future__ import annotations

import threading

from paho.mqtt import client as paho_client
from paho.mqtt.enums import MQTTErrorCode

__all__ = ["install_shared_message_condition"]

_SHARED = threading.Condition()


class _SharedConditionInfo(paho_client.MQTTMessageInfo):
    __slots__ = ()

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self._published = False
        self._condition = _SHARED
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        with _SHARED:
            self._published = True
            _SHARED.notify_all()


def install_shared_message_condition() -> None:
    """Idempotent; affects every paho client created or publishing afterwards in this process."""
    paho_client.MQTTMessageInfo = _SharedConditionInfo  # type: ignore[misc]
