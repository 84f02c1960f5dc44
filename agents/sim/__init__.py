"""Simulated field equipment served over real protocol servers, for tests, demos and benchmarks."""
