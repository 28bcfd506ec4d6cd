"""Support tooling: retrying failed jobs."""
