"""Fault injection (issue 9): the TCP fault proxy, the fault schedule of a scenario and its actions.

proxy.FaultProxy (in-process thread) / proxy_process.ProxyProcess (child process): delay, stall, reset, block.
schedule: scenario faults -> timed, seeded actions (pure). actions: run them against the live fleet.
"""

__all__: list[str] = []
