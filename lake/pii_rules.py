"""Which cleaned columns are masked and how: a stream's PII rules, failing closed.

Three kinds of rule, declared per stream in streams.yaml (docs/cleaning.md, "PII"):
- `pii`: a dotted field path -> mask. The path covers what lies under it, and when the
  value arrives with another shape (`operator` as a string where `operator.email` was
  declared, or inside an array kept as JSON text) the whole value is masked: never passed
  through because it no longer resolves to the declared leaf.
- `pii_keys`: a key -> mask, at any depth: every column with that key on its path, and the
  key's string values inside JSON text (arrays, or an object arriving where a string was
  typed). Under a redact key, a number, boolean or flat object/array in JSON text becomes
  the JSON string "[REDACTED]"; anything deeper, or a non-string under a hash key,
  redacts the whole text.
- `pii_values`: value rules (built-in patterns, or `{pattern, mask}`): every match in a
  stream's text columns is masked, wherever it occurs (an IAM ARN's user part in an error
  message, an e-mail in a free-text field).
Keys match whatever their case: a producer writing `Email` for `email` gains nothing.
The masking runs in SQL (lake.cleaning.masking); regular expressions are RE2 (DuckDB's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

MASKS = ("hash", "redact")

_NAME = r"[A-Za-z0-9+=,.@_-]+"  # IAM's characters for user, role and session names
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV4 = r"\b(?:" + _OCTET + r"\.){3}" + _OCTET + r"\b"
# The full form, an IPv4-mapped one, or a form with `::` (a time such as 12:30:45 is none
# of these, nor are ARNs' `iam::<account>` and `s3:::`). RE2 takes the first alternative that matches, so for each count of groups
# before `::` (fixed by the text) the alternative taking the groups after it comes first.
_IPV6 = "|".join(
    [
        r"\b(?:" + _H + r":){7}" + _H + r"\b",
        r"::(?:[Ff]{4}:)?" + _IPV4,
        *(
            r"\b(?:" + _H + r":){" + str(n) + r"}(?::" + _H + r"){1," + str(7 - n) + r"}\b"
            for n in range(1, 7)
        ),
        r"\b(?:" + _H + r":){2,7}:",
        r"::" + _H + r"(?::" + _H + r"){0,6}\b",
    ]
)

# name -> (kept prefix, masked part, literal hints), applied in this order: a masked part
# becomes hex, which no later rule matches (ipv6 comes before ipv4 so that an
# IPv4-mapped address is masked whole)
BUILTIN_VALUE_RULES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # arn:aws:iam::<account>:user/<path/><name>, :mfa/<name>, :assumed-role/<role>/<session>,
    # :federated-user/<name>: the account, the role and the path stay, the person is masked
    "iam_user_arn": (
        r"arn:aws[a-z-]*:(?:iam::[0-9]{12}:(?:user|mfa)/(?:" + _NAME + r"/)*|sts::[0-9]{12}:"
        r"(?:assumed-role/" + _NAME + r"/|federated-user/))",
        _NAME,
        ("arn:aws",),
    ),
    # IAM's AccessDenied wording for a user resource: "... on resource: user <name> because"
    "iam_message_user": (r"\bresource: user ", _NAME, ("resource: user ",)),
    # an assumed role's unique id with its session: AROA...:<session>, in principalId
    "iam_session_id": (r"\b(?:AROA|ASIA)[A-Z0-9]{16}:", _NAME, ("AROA", "ASIA")),
    "email": ("", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", ("@",)),
    "ipv6": ("", "(?:" + _IPV6 + ")", (":",)),
    "ipv4": ("", _IPV4, (".",)),
    "aws_access_key_id": ("", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", ("AKIA", "ASIA")),
}
# a JSON number or boolean, or an object or array with no object or array inside; its
# strings are read whole (no escapes: a string with one does not match)
_FLAT_STRING = r'"[^"\\]*"'
_FLAT_JSON_VALUE = (
    r"-?[0-9][0-9.eE+-]*|true|false"
    r'|\{(?:[^{}\[\]"]|' + _FLAT_STRING + r")*\}"
    r'|\[(?:[^{}\[\]"]|' + _FLAT_STRING + r")*\]"
)
# a JSON string's content (escapes included) after `"<key>": "`
_JSON_STRING = r"(?:[^\"\\]|\\.)+"


class PiiRuleError(ValueError):
    """A stream's PII rules are not usable (unknown mask, unknown built-in, bad pattern)."""


@dataclass(frozen=True)
class ValueRule:
    """Mask every match of `keep` + `value` in a text: `keep` stays, `value` is masked."""

    name: str
    keep: str
    value: str
    mask: str
    # literal texts of which every match holds one: a cheap test before the regex runs
    hints: tuple[str, ...] = ()
    as_json_string: bool = False  # `redact` writes the marker as a JSON string ("...")

    def redacted(self, marker: str) -> str:
        return json.dumps(marker) if self.as_json_string else marker

    @property
    def pattern(self) -> str:
        return f"({self.keep})({self.value})"


@dataclass(frozen=True)
class PiiRules:
    paths: Mapping[str, str] = field(default_factory=dict)  # dotted path -> mask
    keys: Mapping[str, str] = field(default_factory=dict)  # key at any depth -> mask
    values: tuple[ValueRule, ...] = ()

    @property
    def text_rules(self) -> tuple[ValueRule, ...]:
        """Rules applied to text columns: the keys' string values inside JSON text, then
        the value rules."""
        by_mask = {m: [k for k, km in self.keys.items() if km == m] for m in MASKS}
        strings = tuple(
            ValueRule(
                f"keys ({mask})", _quoted_keys(keys) + r'\s*:\s*"', _JSON_STRING, mask, ('"',)
            )
            for mask, keys in by_mask.items()
            if keys
        )
        # a redact key holding a number, boolean, or an object or array with nothing nested
        # (AssumeRole's `credentials`) becomes the JSON string "[REDACTED]", so the rest of
        # the text survives; anything deeper is left to the whole-text redaction
        flat = (
            ValueRule(
                "keys (redact, not a string)",
                _quoted_keys(by_mask["redact"]) + r"\s*:\s*",
                _FLAT_JSON_VALUE,
                "redact",
                ('"',),
                as_json_string=True,
            ),
        )
        if not by_mask["redact"]:
            flat = ()
        return strings + flat + tuple(self.values)

    @property
    def masks_text(self) -> bool:
        return bool(self.keys or self.values)

    @property
    def non_string_key_value(self) -> str | None:
        """RE2 pattern of a PII key holding a number, boolean, object or array inside JSON
        text: the value cannot be masked in place, so the whole text is redacted."""
        if not self.keys:
            return None
        return _quoted_keys(list(self.keys)) + r"\s*:\s*[-0-9tf{\[]"

    def column_mask(self, path: tuple[str, ...]) -> str | None:
        """The mask of the column at `path` (the record's keys), or None when only the text
        rules apply. Redact wins over hash when several rules meet."""
        lowered = tuple(k.lower() for k in path)
        found = [m for k, m in self.keys.items() if k.lower() in lowered]
        for dotted, mask in self.paths.items():
            rule = tuple(dotted.lower().split("."))
            n = min(len(rule), len(lowered))
            # the column lies under the path, or holds it (another shape): masked whole
            if rule[:n] == lowered[:n]:
                found.append(mask)
        if not found:
            return None
        return "redact" if "redact" in found else "hash"

    def json_column(self, path: tuple[str, ...]) -> tuple[str | None, dict[str, str]]:
        """(mask of the whole column, extra key rules for its text) for a column holding
        JSON text at `path`. A `pii:` path reaching inside it masks its last key inside the
        text, as a `pii_keys` entry would there (at any depth within this column: more than
        the exact path, never less); rules at or above `path` mask the column whole."""
        lowered = tuple(k.lower() for k in path)
        inner: dict[str, str] = {}
        whole = dict(self.paths)
        for dotted, mask in self.paths.items():
            rule = tuple(dotted.lower().split("."))
            if len(rule) > len(lowered) and rule[: len(lowered)] == lowered:
                key = dotted.split(".")[-1]
                inner[key] = "redact" if "redact" in (mask, inner.get(key)) else mask
                del whole[dotted]
        return PiiRules(paths=whole, keys=self.keys).column_mask(path), inner

    def with_keys(self, extra: Mapping[str, str]) -> PiiRules:
        """These rules with more `pii_keys` (redact wins where a key is in both)."""
        keys = dict(self.keys)
        for key, mask in extra.items():
            keys[key] = "redact" if "redact" in (mask, keys.get(key)) else mask
        return PiiRules(paths=self.paths, keys=keys, values=self.values)


def _quoted_keys(keys: list[str]) -> str:
    """RE2 for any of `keys` as a JSON object key, in any case."""
    return '"(?i:' + "|".join(re.escape(k) for k in keys) + ')"'


def parse_pii_rules(body: Mapping[str, Any], where: str) -> PiiRules:
    """The `pii`, `pii_keys` and `pii_values` entries of one stream of streams.yaml."""
    paths = _mask_map(body.get("pii"), "pii", where)
    keys = _mask_map(body.get("pii_keys"), "pii_keys", where)
    values = []
    for name, how in (body.get("pii_values") or {}).items():
        if isinstance(how, str):
            if name not in BUILTIN_VALUE_RULES:
                raise PiiRuleError(
                    f"{where}: pii_values {name!r} is not a built-in rule "
                    f"({', '.join(BUILTIN_VALUE_RULES)}); give {{pattern, mask}} for your own"
                )
            keep, value, hints = BUILTIN_VALUE_RULES[name]
            mask = _mask(how, f"pii_values {name}", where)
            values.append(ValueRule(str(name), keep, value, mask, hints))
        elif isinstance(how, Mapping) and set(how) == {"pattern", "mask"}:
            pattern = str(how["pattern"])
            _check_pattern(pattern, f"{where}: pii_values {name!r}")
            values.append(ValueRule(str(name), "", pattern, _mask(how["mask"], name, where)))
        else:
            raise PiiRuleError(f"{where}: pii_values {name!r}: a mask, or {{pattern, mask}}")
    # built-ins first, in their fixed order (the earlier wins where two match at one place)
    order = list(BUILTIN_VALUE_RULES)
    values.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
    return PiiRules(paths=paths, keys=keys, values=tuple(values))


def _mask_map(entries: Any, what: str, where: str) -> dict[str, str]:
    if entries is None:
        return {}
    if not isinstance(entries, Mapping):
        raise PiiRuleError(f"{where}: {what} must map a field to a mask")
    out = {}
    for name, how in entries.items():
        if not str(name) or any(part == "" for part in str(name).split(".")):
            raise PiiRuleError(f"{where}: {what} has an empty field name {name!r}")
        out[str(name)] = _mask(how, f"{what} {name}", where)
    return out


def _mask(how: Any, what: str, where: str) -> str:
    if how not in MASKS:
        raise PiiRuleError(f"{where}: {what}: mask {how!r} is not one of {MASKS}")
    return str(how)


def _check_pattern(pattern: str, where: str) -> None:
    """A custom pattern must compile in RE2 (checked by DuckDB here, not at the first run)
    and must not match the empty text (it would match between every character)."""
    import duckdb

    try:
        with duckdb.connect() as con:  # not the module's shared connection
            ((empty,),) = con.execute("SELECT regexp_full_match('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        raise PiiRuleError(f"{where}: pattern is not a valid RE2 expression: {exc}") from None
    if empty:
        raise PiiRuleError(f"{where}: pattern matches the empty text")


def text_rule_stages(
    source: str, target: str, rules: PiiRules, hmac_sql: Callable[[str], str], redacted: str
) -> list[str]:
    """Select lists of the query stages that mask one text column: `source` (a quoted
    column name) copied to `_t`, each stage rewriting `_t` with the next text rule, then
    the whole-text redaction, and `_t` named `target` (`SELECT <list> FROM <stage
    before>`: every rule reads the one before's result without repeating its SQL). A rule
    runs only where one of its literal hints occurs and its pattern matches: most values
    pay a few substring tests. The source stays as it was.

    Cleaning runs them once per distinct text of the columns sharing the rules
    (lake.cleaning.typed.mask_by_text): per column and record, CloudTrail's 30 text
    columns made a 600 kB query that took seconds to plan for one record and most of its
    typing time at volume (bench/README.md "Masking packed", "ctthru")."""
    t = "_t"
    steps = [_rule_step(t, rule, hmac_sql, redacted) for rule in rules.text_rules]
    if whole := rules.non_string_key_value:
        steps.append(_whole_step(t, whole, redacted))
    return [
        f"*, {source} AS {t}",
        *(f"* REPLACE ({step} AS {t})" for step in steps),
        f"* EXCLUDE ({t}), {t} AS {target}",
    ]


_WHOLE_HINTS = ('"',)  # a PII key in JSON text is quoted


def _whole_step(t: str, whole: str, redacted: str) -> str:
    return (
        f"CASE WHEN contains({t}, {_lit(_WHOLE_HINTS[0])}) AND "
        f"regexp_matches({t}, {_lit(whole)}) THEN {_lit(redacted)} ELSE {t} END"
    )


def text_rule_hints(rules: PiiRules) -> list[str] | None:
    """Literal texts such that a text holding none of them leaves every stage of
    text_rule_stages unchanged (each stage's guard, `_rule_step` and `_whole_step`;
    a later rule's hint can only appear in a text an earlier rule changed); None when a
    rule has no hint, so every text must go through the stages."""
    guards = [rule.hints for rule in rules.text_rules]
    if rules.non_string_key_value:
        guards.append(_WHOLE_HINTS)
    if any(not hints for hints in guards):
        return None
    return sorted({hint for hints in guards for hint in hints})


def _rule_step(t: str, rule: ValueRule, hmac_sql: Callable[[str], str], redacted: str) -> str:
    """`t` after `rule`. A text that is one match as a whole (an ARN column, an address)
    takes the short way: two extractions instead of three scans and list work."""
    pattern = _lit(rule.pattern)
    hinted = " OR ".join(f"contains({t}, {_lit(h)})" for h in rule.hints) or "true"
    keep, part = (f"regexp_extract({t}, {pattern}, {g})" for g in (1, 2))
    whole = f"{keep} || {hmac_sql(part) if rule.mask == 'hash' else _lit(rule.redacted(redacted))}"
    return (
        f"CASE WHEN NOT ({hinted}) THEN {t} "
        f"WHEN regexp_full_match({t}, {pattern}) THEN {whole} "
        f"WHEN regexp_matches({t}, {pattern}) THEN {_rewrite(t, rule, hmac_sql, redacted)} "
        f"ELSE {t} END"
    )


def _rewrite(t: str, rule: ValueRule, hmac_sql: Callable[[str], str], redacted: str) -> str:
    """`t` with each match of `rule`: its kept prefix, then its masked part. The pieces
    between matches, the kept prefixes and the masked parts come from three scans that
    find the same matches (leftmost, not overlapping), zipped (pieces has one more)."""
    pattern = _lit(rule.pattern)
    zipped = (
        f"list_zip(string_split_regex({t}, {pattern}), regexp_extract_all({t}, {pattern}, 1), "
        f"regexp_extract_all({t}, {pattern}, 2))"
    )
    masked = hmac_sql("_z[3]") if rule.mask == "hash" else _lit(rule.redacted(redacted))
    piece = f"_z[1] || CASE WHEN _z[3] IS NULL THEN '' ELSE _z[2] || {masked} END"
    return f"array_to_string(list_transform({zipped}, lambda _z: {piece}), '')"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
