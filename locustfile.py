"""fleetsim inside plain Locust: `locust -f locustfile.py` against a running `fleetsim backend`.

Example (after `fleetsim backend` printed its info):
    FLEETSIM_SCENARIO=scenarios/quickstart.yaml locust -f locustfile.py --headless -u 500 -r 100 -t 60s
Each user is a virtual device (-u = fleet size unless --fleetsim-devices says otherwise); FleetShape brings
devices online along the scenario's `fleet.ramp` and ends the test at -t or at the scenario's end.
"""

from simulator.locust_adapter.locustfile import *  # noqa: F403  (the user class, the shape and the event hooks)
