"""The throughput benchmark's helpers and its two baselines: Locust's own MqttUser and bare paho.

See bench/throughput.py for the method. Both baselines publish the same 153-byte OTAEvent BSON bytes
(bench.common.ota_payload) at QoS 2 with one certificate per device, one publish in flight per device.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, ota_payload, ota_topic, tls_context

__all__ = ["PUBLISHING_MARK", "child_mqttuser", "child_paho"]

PUBLISHING_MARK = "bench: publishing"  # a child prints it on stderr when publishing starts (profile_hot_path)


def _ids(args: argparse.Namespace, seed_offset: int = 0) -> list[str]:
    from simulator.ids import device_id

    return [device_id(args.seed + seed_offset, i) for i in range(args.devices)]


def _window(
    acked: Callable[[], int], warmup_s: float, seconds: float, sleep: Callable[[float], None]
) -> dict[str, Any]:
    """PUBCOMPs per second and CPU in [warm-up end, + seconds]."""
    sleep(warmup_s)  # the measurement window itself (benchmark timing, not waiting for logic)
    a0, c0, t0 = acked(), cpu_seconds(), time.monotonic()
    sleep(seconds)
    a1, c1, t1 = acked(), cpu_seconds(), time.monotonic()
    n, wall, cpu = a1 - a0, t1 - t0, c1 - c0
    return {
        "events_per_s": round(n / wall, 1),
        "acked_in_window": n,
        "window_s": round(wall, 3),
        "cpu_core_fraction": round(cpu / wall, 3),
        "cpu_us_per_event": round(cpu / max(1, n) * 1e6, 1),
    }


def child_mqttuser(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import itertools

    import gevent
    from locust import constant, task
    from locust.contrib.mqtt import MqttUser
    from locust.env import Environment

    from simulator.transports.credentials import CredentialsCache, target_key

    ids = _ids(args)
    cache = CredentialsCache(Path(info["credentials_dir"]), target_key(info["realm"], info["pairing_url"]))
    payload = ota_payload()
    numbering = itertools.count()
    counts = {"publish_ok": 0, "publish_fail": 0, "connected": 0, "connect_fail": 0}
    go: list[bool] = []  # non-empty once every user is connected

    class DeviceMqttUser(MqttUser):
        host = info["host"]
        port = int(info["port"])
        # MqttUser's own switch: needed past ~340 connections (select() fails for fds >= 1024), slower below
        use_loop_selectors = len(ids) > 300
        wait_time = constant(0)

        def __init__(self, environment: Any) -> None:
            dev = ids[next(numbering)]
            # one certificate per device: an instance attribute read by MqttUser.__init__
            self.tls_context = tls_context(info["ca_file"], cache.cert_path(dev), cache.key_path(dev))
            self.topic = ota_topic(info["realm"], dev)
            super().__init__(environment)

        @task
        def publish(self) -> None:
            if not go or not self.client.is_connected():
                # sleep-ok: all users connect first (as the other systems do), then all publish
                gevent.sleep(0.01)
                return
            self.client.publish(self.topic, payload, qos=2).wait_for_publish(timeout=30)

    def on_request(request_type: str, name: str, exception: Any, **_: Any) -> None:
        kind = "publish" if name.startswith("publish") else "connect" if name == "connect" else None
        if kind == "publish":
            counts["publish_fail" if exception else "publish_ok"] += 1
        elif kind == "connect":
            counts["connect_fail" if exception else "connected"] += 1

    env = Environment(user_classes=[DeviceMqttUser])
    env.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]
    runner = env.create_local_runner()
    t0 = time.monotonic()
    runner.start(len(ids), spawn_rate=len(ids))
    deadline = t0 + 120
    while counts["connected"] + counts["connect_fail"] < len(ids) and time.monotonic() < deadline:
        gevent.sleep(0.05)  # sleep-ok: polling Locust's connect events, bounded by the deadline
    connect_s = round(time.monotonic() - t0, 2)
    go.append(True)
    print(PUBLISHING_MARK, file=sys.stderr, flush=True)
    out = _window(lambda: counts["publish_ok"], args.warmup, args.seconds, gevent.sleep)
    runner.quit()
    return {"connect_s": connect_s, **out, **counts}


def child_paho(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import selectors

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from simulator.transports.credentials import CredentialsCache, target_key

    ids = _ids(args)
    cache = CredentialsCache(Path(info["credentials_dir"]), target_key(info["realm"], info["pairing_url"]))
    payload = ota_payload()
    sel = selectors.DefaultSelector()  # epoll: no fd limit
    ready: list[mqtt.Client] = []
    state = {"acked": 0, "connected": 0}
    topics: dict[mqtt.Client, str] = {}
    masks: dict[mqtt.Client, int] = {}

    def on_publish(c: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        state["acked"] += 1
        ready.append(c)

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        state["connected"] += 1
        ready.append(c)

    def sync(c: mqtt.Client) -> None:
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.want_write() else 0)
        if masks.get(c) != want:
            sel.modify(c.socket(), want, c)  # type: ignore[arg-type]
            masks[c] = want

    t0 = time.monotonic()
    for dev in ids:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)  # as the SDK
        c.tls_set_context(tls_context(info["ca_file"], cache.cert_path(dev), cache.key_path(dev)))
        c.on_publish, c.on_connect = on_publish, on_connect
        c.connect(info["host"], int(info["port"]), keepalive=60)  # TCP + TLS handshake, CONNECT queued
        topics[c] = ota_topic(info["realm"], dev)
        sel.register(c.socket(), selectors.EVENT_READ | selectors.EVENT_WRITE, c)  # type: ignore[arg-type]
        masks[c] = selectors.EVENT_READ | selectors.EVENT_WRITE

    def serve(timeout: float) -> None:
        for key, mask in sel.select(timeout):
            c = key.data
            if mask & selectors.EVENT_READ:
                c.loop_read()
                sock = c.socket()
                while sock is not None and sock.pending():  # TLS bytes already decrypted: epoll won't say
                    c.loop_read()
            if mask & selectors.EVENT_WRITE:
                c.loop_write()
            sync(c)
        for c in ready:
            c.publish(topics[c], payload, qos=2)  # not inside a callback: paho writes it at once
            sync(c)
        ready.clear()

    last_misc = time.monotonic()
    while state["connected"] < len(ids) and time.monotonic() - t0 < 120:
        serve(0.05)
    connect_s = round(time.monotonic() - t0, 2)
    print(PUBLISHING_MARK, file=sys.stderr, flush=True)
    end_warm = time.monotonic() + args.warmup
    while time.monotonic() < end_warm:
        serve(0.05)
    a0, c0, w0 = state["acked"], cpu_seconds(), time.monotonic()
    end = w0 + args.seconds
    while time.monotonic() < end:
        serve(0.05)
        if time.monotonic() - last_misc > 1.0:  # keepalive / retries, as loop() does each pass
            for c in topics:
                c.loop_misc()
            last_misc = time.monotonic()
    a1, c1, w1 = state["acked"], cpu_seconds(), time.monotonic()
    for c in topics:
        c.disconnect()
    n, wall = a1 - a0, w1 - w0
    return {
        "connect_s": connect_s,
        "connected": state["connected"],
        "events_per_s": round(n / wall, 1),
        "acked_in_window": n,
        "window_s": round(wall, 3),
        "cpu_core_fraction": round((c1 - c0) / wall, 3),
        "cpu_us_per_event": round((c1 - c0) / max(1, n) * 1e6, 1),
    }
