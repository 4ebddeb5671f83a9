"""Marts beyond one worker: the shipped DuckDB marts transpiled to Athena (engine v3, the
`trino` dialect) or Redshift, over the catalog tables (`cleaned.<stream>`,
`marts.<mart>`: the Glue databases and tables Athena and Redshift Spectrum see), and
checked.

sqlglot transpiles without complaint SQL the target cannot run (an aggregate's FILTER
clause for Redshift, `GROUP BY ALL` for Trino), so a transpiled mart is judged by:
- sqlglot's own unsupported messages (what ErrorLevel.RAISE would raise on generate);
- the constructs of the DuckDB source that the target lacks (`_LACKS`, each with why);
- the generated SQL parsed back by sqlglot's parser of the target;
- with the inputs' column types (`schema`), a `||` over a value that is not text (Trino's
  `||` takes text only; DuckDB casts).
A mart with no problem is also checked for meaning by the tests: its target SQL read back
into DuckDB must give the original's rows (tests/unit/test_mart_transpile.py).

`getvariable('mart_day')` and `getvariable('day_complete')` (DuckDB session variables) are
bound: to literals for one day, or to the named parameters `:mart_day` and `:day_complete`
(the Redshift Data API's form; Athena takes them as execution parameters). A daily mart
keeps its day's rows, as lake.mart_build does.

    python -m lake.mart_transpile --dialect trino|redshift [--out DIR] [--day YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from lake.marts import MartSpec, load_marts
from lake.streams import load_streams

DIALECTS = ("trino", "redshift")
ENGINES = {"trino": "Athena (engine v3)", "redshift": "Redshift"}
Schema = Mapping[str, Mapping[str, Mapping[str, str]]]  # layer -> table -> column -> type
TEXT = exp.DataType.TEXT_TYPES | {exp.DataType.Type.UNKNOWN}


@dataclass(frozen=True)
class Transpiled:
    mart: str
    dialect: str
    sql: str
    problems: tuple[str, ...]  # why the target cannot run it; empty when it can

    @property
    def passes(self) -> bool:
        return not self.problems


def _has(*kinds: type[exp.Expression]) -> Callable[[exp.Expression], bool]:
    return lambda tree: any(True for _ in tree.find_all(*kinds))


def _range_interval_frame(tree: exp.Expression) -> bool:
    return any(
        w.args.get("kind") == "RANGE" and w.find(exp.Interval) is not None
        for w in tree.find_all(exp.WindowSpec)
    )


def _group_by_all(tree: exp.Expression) -> bool:
    return any(g.args.get("all") and not g.expressions for g in tree.find_all(exp.Group))


def _microsecond_interval(tree: exp.Expression) -> bool:
    return any(i.text("unit").upper() == "MICROSECOND" for i in tree.find_all(exp.Interval))


# (dialects, construct found in the DuckDB source, why the target cannot run it)
_LACKS: tuple[tuple[tuple[str, ...], Callable[[exp.Expression], bool], str], ...] = (
    (
        ("redshift",),
        _has(exp.Filter),
        "aggregate FILTER (WHERE ...): Redshift has no FILTER clause (use CASE inside)",
    ),
    (
        ("redshift",),
        _has(exp.ArgMax, exp.ArgMin),
        "arg_max/arg_min: Redshift has no arg_max, max_by or min_by",
    ),
    (
        ("redshift",),
        _has(exp.GenerateSeries, exp.ExplodingGenerateSeries, exp.Unnest),
        "generate_series/unnest: Redshift runs generate_series on the leader node only and "
        "cannot join it to table data",
    ),
    (
        ("redshift",),
        _range_interval_frame,
        "RANGE window frame with an interval offset: Redshift frames are ROWS only",
    ),
    (
        ("trino",),
        _group_by_all,
        "GROUP BY ALL: Trino reads ALL as a set quantifier and needs the grouping columns",
    ),
    (
        ("trino",),
        _microsecond_interval,
        "INTERVAL ... MICROSECOND: Trino's day-to-second intervals stop at milliseconds",
    ),
)


def bound_query(spec: MartSpec, day: date | None = None, complete: bool | None = None) -> exp.Query:
    """The mart's SELECT with its session variables bound (to literals when `day` is given,
    else to named parameters) and, when daily, kept to its day's rows."""
    tree = sqlglot.parse_one(spec.sql, read="duckdb")
    tree.comments = None  # the header: settings of this project, not SQL for the target
    values: dict[str, exp.Expression] = {
        "mart_day": exp.cast(exp.Literal.string(str(day)), "DATE") if day else exp.Null(),
        "day_complete": exp.Null() if complete is None else exp.Boolean(this=complete),
    }
    if day is None:
        values = {name: exp.var(f":{name}") for name in values}

    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() == "getvariable":
            return values[node.expressions[0].name].copy()
        return node

    tree = tree.transform(bind)
    if spec.partitioned_by != "day":
        return tree
    keep = exp.EQ(this=exp.column("dt"), expression=values["mart_day"].copy())
    return exp.select("*").from_(tree.subquery("mart")).where(keep)


def transpile_mart(
    spec: MartSpec,
    dialect: str,
    day: date | None = None,
    complete: bool | None = None,
    schema: Schema | None = None,
) -> Transpiled:
    """The mart in `dialect` (trino or redshift) and why the target cannot run it, if so."""
    query = bound_query(spec, day, complete)
    problems = [
        message for lacking_in, found, message in _LACKS if dialect in lacking_in and found(query)
    ]
    if dialect == "trino":
        problems += _text_concat_problems(query, schema)
    generator = Dialect.get_or_raise(dialect).generator(
        unsupported_level=ErrorLevel.IGNORE, pretty=True
    )
    sql = generator.generate(query.copy())
    problems += [f"sqlglot: {m}" for m in generator.unsupported_messages]
    problems += _parse_back_problems(sql, dialect)
    return Transpiled(spec.name, dialect, sql, tuple(dict.fromkeys(problems)))


def _text_concat_problems(query: exp.Query, schema: Schema | None) -> list[str]:
    """`||` over a value that is not text (a count, a rounded number): DuckDB casts it,
    Trino refuses it. Columns of unknown type (no schema) are given the benefit of doubt."""
    tables = {layer: dict(tables) for layer, tables in (schema or {}).items()}
    try:
        query = qualify(query.copy(), schema=tables, dialect="duckdb")
    except SqlglotError:  # a column of an input without schema: typed where it can be
        query = query.copy()
    typed = annotate_types(query, schema=tables, dialect="duckdb")
    found = sorted(
        {
            side.sql("duckdb")
            for pipe in typed.find_all(exp.DPipe)
            for side in (pipe.this, pipe.expression)
            if not isinstance(side, exp.DPipe) and side.type and side.type.this not in TEXT
        }
    )
    if not found:
        return []
    return [f"|| over values that are not text ({', '.join(found)}): Trino's || takes text only"]


def _parse_back_problems(sql: str, dialect: str) -> list[str]:
    """SQL that sqlglot's own parser of the target refuses (e.g. IGNORE NULLS before an
    aggregate's FILTER, which Trino allows only before OVER)."""
    try:
        sqlglot.parse_one(sql, read=dialect)
    except ParseError as exc:
        error = exc.errors[0]
        near = " ".join((error["start_context"] + error["highlight"]).split())[-60:]
        return [
            f"the generated SQL does not parse as {dialect}: {error['description']} at '{near}'"
        ]
    return []


def read_back(transpiled: Transpiled) -> str:
    """The target SQL read back into DuckDB's dialect: what the tests run for meaning."""
    return sqlglot.transpile(transpiled.sql, read=transpiled.dialect, write="duckdb")[0]


def transpile_all(
    dialect: str,
    marts: Mapping[str, MartSpec] | None = None,
    day: date | None = None,
    complete: bool | None = None,
    schema: Schema | None = None,
) -> list[Transpiled]:
    """Every mart in `dialect`; one that reads a mart the target cannot run cannot run
    there either (its input would not be built)."""
    if marts is None:
        marts = load_marts(set(load_streams().streams))
    done = {n: transpile_mart(s, dialect, day, complete, schema) for n, s in marts.items()}
    changed = True
    while changed:  # until the failures have reached every mart downstream
        changed = False
        for name, spec in marts.items():
            blocked = [
                f"reads marts.{table}, which cannot run on {ENGINES[dialect]}"
                for layer, table in spec.deps
                if layer == "marts" and not done[table].passes
            ]
            if blocked and not set(blocked) <= set(done[name].problems):
                problems = tuple(dict.fromkeys(done[name].problems + tuple(blocked)))
                done[name] = replace(done[name], problems=problems)
                changed = True
    return [done[name] for name in sorted(done)]


def docs_table(marts: Mapping[str, MartSpec] | None = None) -> str:
    """The Markdown table of docs/marts.md: per mart and engine, `yes` or the reasons."""
    results = {d: {t.mart: t for t in transpile_all(d, marts)} for d in DIALECTS}
    header = "| mart | " + " | ".join(ENGINES[d] for d in DIALECTS) + " |"
    lines = [header, "|---" * (len(DIALECTS) + 1) + "|"]
    for name in sorted(results[DIALECTS[0]]):
        cells = []
        for d in DIALECTS:
            t = results[d][name]
            cell = "yes" if t.passes else "no: " + "; ".join(t.problems)
            cells.append(cell.replace("|", "\\|"))  # a | would end the Markdown cell
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake.mart_transpile", description=__doc__)
    parser.add_argument("--dialect", choices=DIALECTS, required=True)
    parser.add_argument("--out", type=Path, help="write <mart>.sql files here")
    parser.add_argument("--day", type=date.fromisoformat, help="bind the day (else :mart_day)")
    parser.add_argument("--complete", choices=("true", "false"), help="bind day_complete")
    args = parser.parse_args(argv)
    complete = None if args.complete is None else args.complete == "true"
    results = transpile_all(args.dialect, day=args.day, complete=complete)
    for t in results:
        print(f"{t.mart}: " + ("ok" if t.passes else "NO: " + "; ".join(t.problems)))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            problems = "".join(f"-- cannot run: {p}\n" for p in t.problems)
            (args.out / f"{t.mart}.sql").write_text(problems + t.sql + "\n")
    passing = sum(t.passes for t in results)
    print(f"{passing} of {len(results)} marts run on {ENGINES[args.dialect]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
