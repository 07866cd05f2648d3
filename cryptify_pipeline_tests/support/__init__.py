"""What the tests and the benchmarks share: the test database, the pipeline on it, a fake
exchange, exchange dump files and a live deployment."""
