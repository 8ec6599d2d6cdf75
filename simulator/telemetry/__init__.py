"""Live telemetry of a run: one snapshot of counters and HDR histograms, rendered for Prometheus (scrape) and
OpenTelemetry (OTLP push). Nothing here imports locust; the Locust adapter calls `TelemetryHub`."""
