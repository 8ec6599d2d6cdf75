"""The shared-Condition MQTTMessageInfo keeps paho's wait_for_publish semantics across threads."""

from __future__ import annotations

import threading

from paho.mqtt import client as paho_client

from simulator.transports.paho_tuning import install_shared_message_condition


def test_wait_for_publish_returns_for_its_own_message_only() -> None:
    install_shared_message_condition()
    mine, other = paho_client.MQTTMessage(1).info, paho_client.MQTTMessage(2).info
    assert type(mine).__name__ == "_SharedConditionInfo"
    done = threading.Event()

    def waiter() -> None:
        mine.wait_for_publish(timeout=5)
        done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    other._set_as_published()  # wakes the waiter, which must go back to waiting
    assert not done.wait(0.2) and not mine.is_published()
    mine._set_as_published()
    assert done.wait(5) and mine.is_published() and other.is_published()
    thread.join(5)
