"""MySQL/MariaDB privileges as the server's privilege tables hold them, never SHOW GRANTS' text.

A user's own grants come from information_schema (USER_PRIVILEGES, SCHEMA_PRIVILEGES,
TABLE_PRIVILEGES), which every user may read for itself. A database-level grant names a pattern
(`app\\_%`: `_` and `%` are wildcards unless escaped), matched here as the server matches it. The
grants of the user's enabled roles are in mysql.* only (information_schema does not show them even
to root): read when the user may, and otherwise named as unread, so a refusal never rests on
grants crossfade could not see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa

_MAX_DATABASE_NAME = 64  # characters (MariaDB's NAME_CHAR_LEN)
# mysql.db / mysql.user columns for the privileges crossfade checks
_COLUMNS = {"TRIGGER": "Trigger_priv", "ALTER": "Alter_priv", "SUPER": "Super_priv"}


@dataclass
class Grants:
    grantee: str  # 'user'@'host', as GRANT takes it
    global_privileges: set[str] = field(default_factory=set)
    schema_privileges: set[tuple[str, str, str]] = field(default_factory=set)  # (grantee, db pattern, privilege)
    table_privileges: set[tuple[str, str, str]] = field(default_factory=set)  # (database, table, privilege)
    unread_roles: list[str] = field(default_factory=list)
    case_sensitive: bool = True

    def has(self, privilege: str, database: str, table: str | None = None) -> bool:
        if privilege in self.global_privileges or privilege in self.database_privileges(database):
            return True
        return table is not None and (database, table, privilege) in self.table_privileges

    def database_privileges(self, database: str) -> set[str]:
        """The privileges the database-level grants give on `database`. The server does not add
        up every grant whose pattern matches: it takes the most specific one alone (`specificity`),
        so a wildcard grant of TRIGGER is no use to a user that also has a grant on the database by
        name. Two grants equally specific: only what both give."""
        by_pattern: dict[tuple[str, str], set[str]] = {}
        for grantee, pattern, privilege in self.schema_privileges:
            if matches(pattern, database, self.case_sensitive):
                by_pattern.setdefault((grantee, pattern), set()).add(privilege)
        found: set[str] = set()
        for grantee in {g for g, _ in by_pattern}:  # the user and each role, on their own
            rows = {pattern: privileges for (g, pattern), privileges in by_pattern.items() if g == grantee}
            best = max(specificity(p) for p in rows)
            found |= set.intersection(*[privileges for p, privileges in rows.items() if specificity(p) == best])
        return found

    def has_global(self, privilege: str) -> bool:
        return privilege in self.global_privileges


def matches(pattern: str, database: str, case_sensitive: bool = True) -> bool:
    """Does a database-level grant's name (`%`, `_` wildcards; `\\` escapes) cover `database`?"""
    regex = "".join(".*" if m == "%" else "." if m == "_" else re.escape(m[-1])
                    for m in re.findall(r"\\.|.", pattern, re.DOTALL))
    return re.fullmatch(regex, database, 0 if case_sensitive else re.IGNORECASE) is not None


def specificity(pattern: str) -> int:
    """How specific the server ranks a database-level grant's name: the larger, the more specific
    (MariaDB's get_magic_sort, sql_acl_getsort.ic, negated: a name without wildcards first, `%`
    last; an unescaped `_` is a wildcard, yet `app_1` still ranks above `app\\_%`)."""
    n = m = k = p = 0
    raw = pattern.encode()
    i = 0
    while i < len(raw):
        ch = raw[i : i + 1]
        if ch in (b"%", b"_"):
            if not k and not m:
                p = n
            if ch == b"%":
                k += 1
                while raw[i + 1 : i + 2] == b"%":
                    i += 1
            else:
                m += 1
        else:
            if ch == b"\\" and i + 1 < len(raw):
                i += 1
            n += 1
        i += 1
    k, m = min(k, 31), min(m, 31)
    maxlen = _MAX_DATABASE_NAME
    d, d1 = maxlen + 1, min(maxlen + 1, 32)
    length = maxlen - n - m if k else 0
    if length > m:
        magic = (((length * 2 + 1) * d + k) * d1 + m) * d + p
    else:
        magic = (((m * 2) * d + length) * d1 + k) * d + p
    return -magic


def read_grants(conn: sa.Connection) -> Grants:
    user, host = conn.execute(sa.text("SELECT CURRENT_USER()")).scalar().rsplit("@", 1)
    grants = Grants(f"'{user}'@'{host}'")
    grants.case_sensitive = int(conn.execute(sa.text("SELECT @@lower_case_table_names")).scalar() or 0) == 0
    _read_own(conn, grants)
    for role in _enabled_roles(conn):
        if not _read_role(conn, role, grants):
            grants.unread_roles.append(role)
    return grants


def _enabled_roles(conn: sa.Connection) -> list[str]:
    """The roles in effect for this session (MySQL before 8 has no roles, nor this view)."""
    try:
        with conn.begin_nested():
            return list(conn.execute(sa.text(
                "SELECT ROLE_NAME FROM information_schema.ENABLED_ROLES WHERE ROLE_NAME IS NOT NULL")).scalars())
    except sa.exc.DBAPIError:
        return []


def _read_own(conn: sa.Connection, grants: Grants) -> None:
    who = {"grantee": grants.grantee}
    grants.global_privileges |= set(conn.execute(sa.text(
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = :grantee"), who).scalars())
    grants.schema_privileges |= set(map(tuple, conn.execute(sa.text(
        "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
        "WHERE GRANTEE = :grantee"), who)))
    grants.table_privileges |= set(map(tuple, conn.execute(sa.text(
        "SELECT TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
        "WHERE GRANTEE = :grantee"), who)))


def _read_role(conn: sa.Connection, role: str, grants: Grants) -> bool:
    """A role's grants from mysql.user, mysql.db and mysql.tables_priv; False if unreadable."""
    try:
        with conn.begin_nested():
            user = conn.execute(sa.text("SELECT * FROM mysql.user WHERE User = :role AND Host = ''"),
                                {"role": role}).mappings().first() or {}
            databases = conn.execute(sa.text("SELECT * FROM mysql.db WHERE User = :role AND Host = ''"),
                                     {"role": role}).mappings().all()
            tables = conn.execute(sa.text(
                "SELECT Db, Table_name, Table_priv FROM mysql.tables_priv WHERE User = :role AND Host = ''"),
                {"role": role}).all()
    except sa.exc.DBAPIError:
        return False
    grants.global_privileges |= {p for p, column in _COLUMNS.items() if user.get(column) == "Y"}
    for row in databases:
        grants.schema_privileges |= {(role, row["Db"], p) for p, column in _COLUMNS.items() if row.get(column) == "Y"}
    for database, table, privileges in tables:
        grants.table_privileges |= {(database, table, p.upper()) for p in _privilege_set(privileges)}
    return True


def _privilege_set(value) -> set[str]:
    if isinstance(value, (set, frozenset)):
        return set(value)
    return {p for p in str(value or "").split(",") if p}


NEEDED = ("TRIGGER", "ALTER")  # CREATE/DROP TRIGGER; ADD/DROP COLUMN and the other ALTER TABLEs


def privilege_problems(conn: sa.Connection, tables: list[str]) -> tuple[list[str], list[str]]:
    """(errors, warnings): each privilege crossfade's DDL needs on `tables` that the user lacks,
    with the GRANT that gives it; binary logging that CREATE TRIGGER would trip over."""
    grants = read_grants(conn)
    database = conn.execute(sa.text("SELECT DATABASE()")).scalar()
    missing = [(p, t) for p in NEEDED for t in tables if not grants.has(p, database, t)]
    errors, warnings = [], []
    for privilege in dict.fromkeys(p for p, _ in missing):
        names = ", ".join(t for p, t in missing if p == privilege)
        message = (f"the database user {grants.grantee} lacks the {privilege} privilege on table {names} of "
                   f"database {database}: GRANT {privilege} ON `{database}`.* TO {grants.grantee}")
        if grants.unread_roles:
            warnings.append(f"{message} (unless its role {', '.join(grants.unread_roles)} has it: the user may "
                            "not read mysql.*, so crossfade cannot tell)")
        else:
            errors.append(message)
    errors += _binlog_problems(conn, grants, warnings)
    return errors, warnings


def _binlog_problems(conn: sa.Connection, grants: Grants, warnings: list[str]) -> list[str]:
    log_bin, binlog_format, trust = conn.execute(sa.text(
        "SELECT @@log_bin, @@binlog_format, @@log_bin_trust_function_creators")).one()
    if not int(log_bin or 0):
        return []
    problems = []
    if str(binlog_format).upper() == "STATEMENT":
        problems.append("binary logging is statement-based (binlog_format=STATEMENT); triggers replicate "
                        "unsafely: set binlog_format=ROW or MIXED")
    if not int(trust or 0) and not grants.has_global("SUPER"):
        message = (f"binary logging is on and the database user {grants.grantee} has neither SUPER nor "
                   "log_bin_trust_function_creators=1, so CREATE TRIGGER would fail: "
                   "SET GLOBAL log_bin_trust_function_creators = 1 (or GRANT SUPER ON *.* TO "
                   f"{grants.grantee})")
        (warnings if grants.unread_roles else problems).append(message)
    return problems
