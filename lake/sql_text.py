"""Quoting for generated SQL (DuckDB and Redshift alike): names and values from data are
hostile, so every identifier is quoted and every literal escaped."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
