"""Names as MySQL/MariaDB store them, whatever SQLAlchemy's reflection makes of them.

SQLAlchemy reflects MySQL tables by parsing SHOW CREATE TABLE, and leaves the backtick of a
column, index or key-column name doubled as the text escapes it: a column created as n`ew
reflects as n``ew, so crossfade found no column it had just added (and rollback found nothing to
drop). `mend_reflection` unescapes those names in the dialect's parser. It asks the parser first:
a SQLAlchemy that unescapes them itself is left alone.
"""

from __future__ import annotations

from sqlalchemy.dialects.mysql.reflection import ReflectedState

_PROBE = "  `a``b` int(11) DEFAULT NULL,"


def unescape(name: str) -> str:
    return name.replace("``", "`")


def mend_reflection(sa_dialect) -> None:
    """Make `sa_dialect`'s table parser return names unescaped (once per dialect object)."""
    parser = sa_dialect._tabledef_parser
    if getattr(parser, "_crossfade_mended", False):
        return
    parser._crossfade_mended = True
    if not _doubles_backticks(parser):
        return
    parse_column, parse_constraints, parse_keyexprs = (
        parser._parse_column, parser._parse_constraints, parser._parse_keyexprs)

    def _parse_column(line, state):
        before = len(state.columns)
        parse_column(line, state)
        for column in state.columns[before:]:
            column["name"] = unescape(column["name"])

    def _parse_constraints(line):
        kind, spec = parse_constraints(line)
        if isinstance(spec, dict) and spec.get("name"):
            spec["name"] = unescape(spec["name"])
        return kind, spec

    def _parse_keyexprs(identifiers):
        return [(unescape(name), length, modifiers) for name, length, modifiers in parse_keyexprs(identifiers)]

    parser._parse_column = _parse_column
    parser._parse_constraints = _parse_constraints
    parser._parse_keyexprs = _parse_keyexprs


def _doubles_backticks(parser) -> bool:
    state = ReflectedState()
    parser._parse_column(_PROBE, state)
    return bool(state.columns) and state.columns[0]["name"] == "a``b"
