"""Development-only helpers shared by the tests and the benchmarks (never deployed)."""
