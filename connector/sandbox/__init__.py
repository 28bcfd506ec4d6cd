"""Local emulators and generators for the demo, tests and benchmarks."""
