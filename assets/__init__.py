"""Dagster asset definitions, one module per lake layer; the logic lives in lake/."""
