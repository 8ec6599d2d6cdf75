"""The run spine: a run is one `RunSpec` (built once in a composition root), played by a driver through
`execute(spec, driver) -> RunResult`. See docs/architecture.md."""
