"""Dagster Pipes workers: the lake core run outside the orchestrator's process."""
