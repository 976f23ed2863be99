"""Identifiers: which names each database can hold exactly, and the names crossfade makes up.

PostgreSQL cuts a name longer than 63 bytes (UTF-8) to 63 with only a NOTICE, so two names
sharing their first 63 bytes silently become one (three characters of CJK text are 9 bytes);
MySQL/MariaDB refuse a name over 64 characters. A generated name that is too long keeps what
fits of the table's name and appends a short hash of the whole name, so it stays unique. A name
the user chose (a new column, table, index or constraint) that the database would cut or refuse
is an IdentifierError before any DDL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import IdentifierError

PREFIX = "crossfade_"
TRIGGERED_TABLE = "triggered table"  # a kind of name: a table crossfade puts triggers on
HASH_LENGTH = 8
_WHITESPACE = " \t\n\r\x0b\x0c"


@dataclass(frozen=True)
class IdentifierRules:
    """What one database accepts as a quoted identifier."""

    dialect: str
    limit: int | None  # None: no limit (SQLite)
    unit: str = "bytes"  # "bytes" (UTF-8) or "characters"
    bmp_only: bool = False  # MySQL/MariaDB hold only characters up to U+FFFF in names
    no_trailing_space: bool = False  # MySQL/MariaDB refuse a name ending in a space, tab or line break
    # SQLAlchemy reflects MySQL/MariaDB tables by reading SHOW CREATE TABLE line by line: a name
    # with a line break in it is a column it cannot see.
    no_line_breaks: bool = False
    # MySQL/MariaDB keep a table (or view, trigger) in a file named after it, with each character
    # but [A-Za-z0-9_] spelled as five (@xxxx): 50 CJK characters fit, 51 fail ("File name too long").
    file_name_limit: int | None = None
    # A table's triggers are in <table>.TRG, written as <table>.TRG~ first: one byte longer than
    # the table's own files (.ibd, .frm), so a table can be too long a name to take triggers.
    trigger_file_suffix: int = 0

    def size(self, name: str) -> int:
        return len(name.encode()) if self.unit == "bytes" else len(name)

    def file_name_size(self, name: str) -> int:
        return sum(1 if ch.isascii() and (ch.isalnum() or ch == "_") else 5 for ch in name)

    def problem(self, name: str, kind: str = "column") -> str | None:
        """Why the database cannot hold `name` exactly as written, as the name of a `kind`
        (table, column, index, constraint) (None: it can)."""
        if not name:
            return "it is empty"
        if "\x00" in name:
            return "it contains a NUL character"
        if name.endswith("\n"):  # SQLAlchemy's check for "needs quotes" lets a final line break through
            return "it ends with a line break, which SQLAlchemy writes unquoted"
        if self.limit is not None and self.size(name) > self.limit:
            return (f"it is {self.size(name)} {self.unit} long and {self.dialect} holds at most {self.limit} "
                    f"{self.unit} (it would cut the name, or refuse it)")
        if self.bmp_only and any(ord(ch) > 0xFFFF for ch in name):
            return f"it contains a character above U+FFFF, which {self.dialect} does not allow in a name"
        if self.no_trailing_space and name[-1] in _WHITESPACE:
            return f"it ends with a space, tab or line break, which {self.dialect} does not allow"
        if self.no_line_breaks and ("\n" in name or "\r" in name):
            return f"it contains a line break, which SQLAlchemy's reflection of {self.dialect} tables cannot read"
        if kind in ("table", TRIGGERED_TABLE) and self.file_name_limit:
            limit = self.file_name_limit - (self.trigger_file_suffix if kind == TRIGGERED_TABLE else 0)
            if self.file_name_size(name) > limit:
                what = "a table's triggers" if kind == TRIGGERED_TABLE else "a table"
                return (f"{self.dialect} keeps {what} in a file named after the table, and this name's file name "
                        f"would be {self.file_name_size(name)} bytes (at most {limit}; each character other than "
                        "A-Z, a-z, 0-9 and _ takes 5)")
        return None


SQLITE = IdentifierRules("sqlite", None)
POSTGRESQL = IdentifierRules("postgresql", 63, "bytes")
MYSQL = IdentifierRules("mysql", 64, "characters", bmp_only=True, no_trailing_space=True, no_line_breaks=True,
                        file_name_limit=251, trigger_file_suffix=1)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def fit(text: str, budget: int, rules: IdentifierRules) -> str:
    """The longest prefix of `text` (whole characters) within `budget` units."""
    while text and rules.size(text) > budget:
        text = text[:-1]
    return text


def generated_name(rules: IdentifierRules, table: str, suffix: str) -> str:
    """crossfade_<table>_<suffix>; when too long, what fits of <table> plus a hash of the whole
    name, so two tables sharing a long prefix (or one table's several objects) never collide."""
    name = f"{PREFIX}{table}_{suffix}"
    if rules.limit is None or rules.size(name) <= rules.limit:
        return name
    tail = f"{digest(name)}_{suffix}"
    keep = fit(table, rules.limit - rules.size(PREFIX) - rules.size(tail), rules)
    return f"{PREFIX}{keep}{tail}"


def portable(name: str) -> str:
    """`name`, shortened with a hash of the whole when it is too long for any of the databases
    (63 bytes of UTF-8 is also within MySQL's 64 characters)."""
    if POSTGRESQL.size(name) <= POSTGRESQL.limit:
        return name
    tail = f"_{digest(name)}"
    return fit(name, POSTGRESQL.limit - len(tail), POSTGRESQL) + tail


def dollar_tag(body: str) -> str:
    """A PostgreSQL dollar-quote tag ($crossfade$, or one with a hash) that `body` does not contain."""
    tag, attempt = "$crossfade$", 0
    while tag in body:
        attempt += 1
        tag = f"$crossfade_{digest(f'{attempt}:{body}')}$"
    return tag


def triggered_tables(tables: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """(kind, table, name) for the tables crossfade will put triggers on."""
    for table in tables:
        yield TRIGGERED_TABLE, table, table


def refuse_illegal(rules: IdentifierRules, names: Iterable[tuple[str, str, str]]) -> None:
    """IdentifierError for the first (kind, table, name) the database cannot hold exactly."""
    for kind, table, name in names:
        if name is None:
            continue  # unnamed: the database names it
        reason = rules.problem(name, kind)
        if reason is not None:
            raise IdentifierError(kind, table, name, rules.dialect, reason)
