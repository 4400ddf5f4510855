"""Tools for tests, benchmarks and the CI smoke runs: tiny random-weight models of the
real architectures, built locally from the package's own text (no downloads)."""
