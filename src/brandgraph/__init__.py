"""Brandgraph composition root: the command line and the embedded development services."""
