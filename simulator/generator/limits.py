"""Process limits a large fleet needs: one socket per device (plus a few for the pairing client and Locust)."""

from __future__ import annotations

import resource

from simulator.errors import UsageError

__all__ = ["FDS_PER_PROCESS_OVERHEAD", "ensure_open_files"]

FDS_PER_PROCESS_OVERHEAD = 256  # Locust, logs, HTTP clients, gevent's own: measured well under 100; margin


def ensure_open_files(devices_here: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; a clear error if the fleet still cannot fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, devices_here + FDS_PER_PROCESS_OVERHEAD)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    needed = devices_here + FDS_PER_PROCESS_OVERHEAD
    if target < needed:
        raise UsageError(f"{devices_here} devices in one process need about {needed} open files, but the hard "
                         f"limit is {target}: raise it (ulimit -Hn, or the container's nofile) or use --processes")
    return int(target)
