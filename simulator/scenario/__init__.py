"""Scenarios: frozen, validated descriptions of a run (model.py), loaded from YAML with file:line (loader.py)."""
