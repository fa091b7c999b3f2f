"""Reproducible experiments and ablations (each a module runnable with ``python -m``)."""
