"""Locust as fleetsim's engine. The only package that imports locust (its import monkey-patches gevent)."""
