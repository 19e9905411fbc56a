"""Defaults of a new fixture, in a module light enough for the command line to import."""

DEFAULT_CPUS = 2
