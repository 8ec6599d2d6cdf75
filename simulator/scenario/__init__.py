"""Scenarios: frozen, validated descriptions of a run (model.py), loaded from YAML with file:line (loader.py).

Public entry points: simulator.scenario.loader.load_scenario / load_scenario_text.
"""
