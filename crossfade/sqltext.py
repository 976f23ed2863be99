"""Reading SQL text the database stores (view and trigger bodies, CREATE TABLE statements): a
small tokenizer that tells identifiers, quoted or not, from string literals, comments and
punctuation, so a search for a column name never matches inside a string or a longer name."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*'|[xXbBnN]'(?:[^']|'')*')
  | (?P<double>"(?:[^"]|"")*")
  | (?P<back>`(?:[^`]|``)*`)
  | (?P<bracket>\[[^\]]*\])
  | (?P<word>[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str  # "identifier" (bare words included), "string", "number" or "punct"
    text: str  # as written
    value: str  # an identifier's name (quotes removed, doubled quotes undone); else the text
    start: int
    end: int
    quoted: bool = False


def tokens(sql: str) -> list[Token]:
    """The tokens of `sql`, comments and white space left out."""
    result = []
    for match in _TOKEN.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if kind == "space":
            continue
        if kind in ("double", "back", "bracket"):
            inner = text[1:-1]
            value = inner.replace('""', '"') if kind == "double" else inner.replace("``", "`")
            result.append(Token("identifier", text, value, match.start(), match.end(), quoted=True))
        elif kind == "word":
            result.append(Token("identifier", text, text, match.start(), match.end()))
        else:
            result.append(Token({"other": "punct"}.get(kind, kind), text, text, match.start(), match.end()))
    return result


def identifiers(sql: str) -> set[str]:
    """Every name `sql` uses (bare ones as written; compare with `mentions` for case)."""
    return {t.value for t in tokens(sql) if t.kind == "identifier"}


def mentions(sql: str, name: str) -> bool:
    """`sql` uses `name` as an identifier (case-insensitive, as SQLite and MariaDB compare column names)."""
    folded = name.casefold()
    return any(t.kind == "identifier" and t.value.casefold() == folded for t in tokens(sql))


def generated_columns(create_table: str) -> dict[str, tuple[str, bool]]:
    """From a CREATE TABLE statement: each generated column's name -> (its expression as written,
    whether it is STORED). SQLAlchemy's SQLite reflection runs one column's expression into the
    next column's definition; this reads the statement token by token instead."""
    found: dict[str, tuple[str, bool]] = {}
    for definition in _column_definitions(create_table):
        if not definition or definition[0].kind != "identifier":
            continue
        words = [t.value.upper() if t.kind == "identifier" and not t.quoted else "" for t in definition]
        for i in range(1, len(definition) - 1):
            if words[i] == "AS" and definition[i + 1].text == "(":
                close = _closing(definition, i + 1)
                expression = create_table[definition[i + 1].end:definition[close].start].strip()
                stored = close + 1 < len(definition) and words[close + 1] == "STORED"
                found[definition[0].value] = (expression, stored)
                break
    return found


_TABLE_CONSTRAINTS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}


def _column_definitions(create_table: str) -> list[list[Token]]:
    """The top-level comma-separated parts between CREATE TABLE's outer parentheses, without
    the table constraints."""
    toks = tokens(create_table)
    opening = next((i for i, t in enumerate(toks) if t.text == "("), None)
    if opening is None:
        return []
    parts: list[list[Token]] = [[]]
    depth = 0
    for t in toks[opening + 1:]:
        if t.text == "(":
            depth += 1
        elif t.text == ")":
            if depth == 0:
                break
            depth -= 1
        elif t.text == "," and depth == 0:
            parts.append([])
            continue
        parts[-1].append(t)
    return [p for p in parts if p and not (not p[0].quoted and p[0].value.upper() in _TABLE_CONSTRAINTS)]


def _closing(toks: list[Token], opening: int) -> int:
    depth = 0
    for i in range(opening, len(toks)):
        if toks[i].text == "(":
            depth += 1
        elif toks[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    return len(toks) - 1
