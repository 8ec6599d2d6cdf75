"""fleetsim: a device-fleet simulator and load tester for Edgehog on Astarte."""

__all__ = ["__version__"]

__version__ = "0.1.0"
