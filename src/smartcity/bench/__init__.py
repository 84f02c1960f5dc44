"""Benchmarks behind ``smartcity bench``: each prints its figure next to the ceiling it is
compared with, measured in the same run."""
