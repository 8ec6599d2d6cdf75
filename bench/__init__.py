"""fleetsim benchmarks: scripts that print JSON, not tests. Run from the repo root: python bench/<name>.py."""
