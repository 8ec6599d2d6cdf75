"""`fleetsim otarequest`: print one io.edgehog.devicemanager.OTARequest payload (BSON) on stdout.

For answering devices in `mode: responder` by hand, as Edgehog would: pipe it into any MQTT client, e.g.
    fleetsim otarequest --uuid "$(python -c 'import uuid; print(uuid.uuid4())')" --url https://x/img.raucb \
      | mosquitto_pub -h 127.0.0.1 -p PORT --cafile CA --cert ADMIN.crt --key ADMIN.key -q 0 -s \
          -t REALM/DEVICE/io.edgehog.devicemanager.OTARequest/request
The bytes are what Edgehog sends through Astarte: BSON `{"v": {"operation", "url", "uuid"}}`, no `t`
(the interface has no explicit timestamp), the same encoder the devices use.
"""

from __future__ import annotations

import argparse
import sys
import uuid as uuidlib

HELP = "print an OTARequest payload (BSON) for mosquitto_pub -s (mode: responder by hand)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operation", default="Update", choices=["Update", "Cancel"])
    parser.add_argument("--uuid", required=True, help="the operation's requestUUID")
    parser.add_argument("--url", default="", help="the image URL (Update)")


def run(args: argparse.Namespace) -> int:
    from simulator.errors import UsageError
    from simulator.transports.wire import encode_value

    try:
        uuidlib.UUID(args.uuid)
    except ValueError as exc:
        raise UsageError(f"--uuid: not a UUID: {args.uuid!r}") from exc
    payload = encode_value({"operation": args.operation, "url": args.url, "uuid": args.uuid}, None)
    sys.stdout.buffer.write(payload)
    sys.stdout.buffer.flush()
    return 0
