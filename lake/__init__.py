"""Dagster-free core of the pipeline: storage, formats, crawler, cleaning, marts, simulator.

Nothing in this package imports dagster, so every piece can run inside a Lambda,
a Glue job or a plain script.
"""
