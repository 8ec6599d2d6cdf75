"""The generator side of a run, without Locust: targets, transports and the devices of one process."""
