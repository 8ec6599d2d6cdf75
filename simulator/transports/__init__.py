"""Transports: how a virtual device talks to a backend. The core only sees `transports.base.Transport`."""
