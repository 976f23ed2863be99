"""Typed errors: each names exactly what is wrong, so an operator can act on the message alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CrossfadeError(Exception):
    """Base of every error crossfade raises on purpose."""


class ValidationError(CrossfadeError):
    """A change cannot be applied as declared; raised before any DDL runs."""


class UnknownTableError(ValidationError):
    def __init__(self, table: str):
        self.table = table
        super().__init__(f"table {table!r} does not exist")


class TableExistsError(ValidationError):
    def __init__(self, table: str):
        self.table = table
        super().__init__(f"a table or view named {table!r} already exists")


class TableAlreadyLinkedError(ValidationError):
    def __init__(self, table: str):
        self.table = table
        super().__init__(f"table {table!r} is in two cross-table operations of one change (rename_table, "
                         "split_table, or move_column across different foreign keys): put one in a change of its own")


class UnknownColumnError(ValidationError):
    def __init__(self, table: str, column: str):
        self.table, self.column = table, column
        super().__init__(f"column {table}.{column} does not exist")


class ColumnExistsError(ValidationError):
    def __init__(self, table: str, column: str):
        self.table, self.column = table, column
        super().__init__(f"column {table}.{column} already exists")


class ColumnAlreadySyncedError(ValidationError):
    def __init__(self, table: str, column: str):
        self.table, self.column = table, column
        super().__init__(
            f"column {table}.{column} is used by two operations of the same change; "
            "split them into two changes"
        )


class NotNullWithoutFillError(ValidationError):
    def __init__(self, table: str, column: str, hint: str):
        self.table, self.column = table, column
        super().__init__(f"column {table}.{column} is NOT NULL but has no way to be filled: {hint}")


class TransformError(ValidationError):
    """A transform does not compile, or fails when the database evaluates it."""

    def __init__(self, table: str, column: str, dialect: str, detail: str):
        self.table, self.column, self.dialect = table, column, dialect
        super().__init__(f"transform for {table}.{column} fails on {dialect}: {detail}")


class TransformRaisedError(TransformError):
    """A user's transform raised when crossfade called it to build its SQL (before any DDL).

    Transforms receive SQLAlchemy column expressions, not values; the usual mistake is Python's
    `if` / `and` / `or` / `not` on one, which SQLAlchemy refuses with a TypeError."""

    def __init__(self, what: str, table: str, column: str, error: Exception):
        self.table, self.column, self.dialect, self.what, self.error = table, column, None, what, error
        subject = f"{what} for {table}.{column}" if column else f"{what} on {table}"
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if isinstance(error, TypeError) and "Boolean value of this clause is not defined" in detail:
            message = (f"{subject} uses Python's if / and / or / not on a column ({detail}): write "
                       "sa.case((condition, value), else_=other), sa.and_(...), sa.or_(...) or sa.not_(...) instead")
        else:
            message = (f"{subject} raised {type(error).__name__}" + (f": {detail}" if detail else "")
                       + "; fix the transform (it receives SQLAlchemy column expressions, not values)")
        ValidationError.__init__(self, message)


class RoundTripError(ValidationError):
    """down(up(a)) != a for some value a that release N can store."""

    def __init__(self, table: str, columns: tuple[str, ...], value, up_value, back_value):
        self.table, self.columns = table, columns
        self.value, self.up_value, self.back_value = value, up_value, back_value
        cols = ", ".join(f"{table}.{c}" for c in columns)
        super().__init__(
            f"round-trip law broken for {cols}: a={value!r} -> up(a)={up_value!r} "
            f"-> down(up(a))={back_value!r}, expected {value!r}"
        )


class AmbiguousNullError(ValidationError):
    """Release N+1's NULL in a new column would be lost or refused (DESIGN 2, "The NULL ambiguity")."""

    def __init__(self, table: str, columns: Sequence[str], problem: str, fix: str):
        self.table, self.columns = table, tuple(columns)
        cols = ", ".join(f"{table}.{c}" for c in columns)
        super().__init__(f"release N+1's NULL in {cols}: {problem}; {fix}")


class NullsRemainError(ValidationError):
    def __init__(self, table: str, column: str, count: int):
        self.table, self.column, self.count = table, column, count
        super().__init__(
            f"column {table}.{column} still holds {count} NULL row(s); it cannot become NOT NULL. "
            "Give the operation a fill, or fix the rows, then contract again"
        )


class TableBusyError(ValidationError):
    def __init__(self, table: str, other_change: str):
        self.table, self.other_change = table, other_change
        super().__init__(
            f"table {table!r} is still synced by change {other_change!r}; "
            "contract or roll it back first"
        )


class PreflightError(CrossfadeError):
    """The database or the table is not fit for online changes; raised before any DDL runs."""


class PhaseError(CrossfadeError):
    """A phase was asked for out of order (e.g. contract before migrate)."""


@dataclass(frozen=True)
class LockHolder:
    """A session holding a lock a DDL step needs, as the database described it when the step gave up."""

    session: str  # "pid 4242", "connection 17": what pg_terminate_backend / KILL take
    who: str = ""  # user, application or host
    state: str = ""  # "idle in transaction", "Sleep", ...
    transaction_age: float | None = None  # seconds its transaction has been open
    query: str = ""  # its current (or last) statement, shortened
    lock: str = ""  # what it holds, e.g. "AccessShareLock"
    # False where the database cannot tell which tables a transaction holds (MariaDB without the
    # metadata_lock_info plugin): an open transaction that may be the one.
    certain: bool = True

    def describe(self) -> str:
        age = f"transaction open {self.transaction_age:.1f}s" if self.transaction_age is not None else ""
        details = ", ".join(part for part in (self.who, self.state, age, self.lock) if part)
        return f"{self.session} ({details})" + (f": {self.query}" if self.query else "")


def _holders_text(holders: Sequence[LockHolder]) -> str:
    certain = [h.describe() for h in holders if h.certain]
    maybe = [h.describe() for h in holders if not h.certain]
    parts = [f"held by {'; '.join(certain)}"] if certain else []
    if maybe:
        parts.append("open transactions, any of which may hold it (the database cannot say which tables a "
                     f"transaction holds): {'; '.join(maybe)}")
    return "".join(f". {part[0].upper()}{part[1:]}" for part in parts)


class LockTimeoutError(CrossfadeError):
    def __init__(self, statement: str, attempts: int, waited: float, lost_work: int = 0,
                 holders: Sequence[LockHolder] = ()):
        self.statement, self.attempts, self.waited = statement, attempts, waited
        self.holders = list(holders)
        why = ("a long transaction holds the table" if not lost_work else
               f"{lost_work} attempts did their work and then lost the lock they need to finish: "
               "transactions keep touching the table; run this step at a quieter time, or with a "
               "longer --lock-timeout")
        super().__init__(
            f"could not take the lock for DDL after {attempts} attempts over {waited:.1f}s "
            f"({why}): {statement.splitlines()[0][:120]}{_holders_text(self.holders)}"
        )


class VerificationError(CrossfadeError):
    """The database does not look the way the phase that just ran should have left it."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class UnsupportedDialectError(CrossfadeError):
    """The database is not one crossfade writes triggers for."""


class ChangeLoadError(CrossfadeError):
    """A change module could not be found or does not define a Change."""


class MissingDependencyError(CrossfadeError):
    """An optional package a command needs is not installed."""

    def __init__(self, package: str, needed_for: str, instead: str = ""):
        self.package = package
        super().__init__(f"{needed_for} needs the {package} package, which is not installed: "
                         f"pip install {package}" + (f", or {instead}" if instead else ""))


class NoDatabaseFileError(CrossfadeError):
    """A SQLite URL names a file that does not exist, for a command that must not create one."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(f"no SQLite database file at {path}: check the path in the URL "
                         "(this command does not create one)")


class PrimaryKeyColumnError(ValidationError):
    def __init__(self, table: str, column: str):
        self.table, self.column = table, column
        super().__init__(
            f"column {table}.{column} is part of the primary key; crossfade cannot change it online"
        )


class ColumnNotNullableError(ValidationError):
    def __init__(self, table: str, column: str):
        self.table, self.column = table, column
        super().__init__(f"column {table}.{column} is already NOT NULL")


class ConstraintExistsError(ValidationError):
    def __init__(self, table: str, name: str):
        self.table, self.name = table, name
        super().__init__(f"an index or constraint named {name!r} already exists on table {table!r}")


class ConstraintViolationError(ValidationError):
    """Existing rows break a constraint contract would add; raised before contract's first DDL."""

    def __init__(self, table: str, constraint: str, count: int, sample: str, problem: str):
        self.table, self.constraint, self.count, self.sample = table, constraint, count, sample
        super().__init__(f"cannot add {constraint} on {table!r}: {problem}, e.g. {sample}. "
                         "Fix those rows, then contract again")


class DuplicateRowsError(ConstraintViolationError):
    def __init__(self, table: str, constraint: str, count: int, sample: str):
        super().__init__(table, f"unique constraint {constraint!r}", count, sample,
                         f"{count} value(s) occur in more than one row")
        self.constraint = constraint


class OrphanRowsError(ConstraintViolationError):
    def __init__(self, table: str, constraint: str, ref_table: str, count: int, sample: str):
        super().__init__(table, f"foreign key {constraint!r}", count, sample,
                         f"{count} row(s) reference no row of {ref_table!r}")
        self.constraint, self.ref_table = constraint, ref_table


class CheckViolationError(ConstraintViolationError):
    def __init__(self, table: str, constraint: str, count: int, sample: str):
        super().__init__(table, f"check constraint {constraint!r}", count, sample, f"{count} row(s) fail it")
        self.constraint = constraint


class UnmovableValuesError(ValidationError):
    """move_column: values no target row can hold (their row matches none); raised before any DDL."""

    def __init__(self, table: str, columns: str, target: str, count: int, sample: str, phase: str):
        self.table, self.columns, self.target, self.count, self.sample = table, columns, target, count, sample
        super().__init__(
            f"{count} row(s) of {table!r} hold {columns} but match no {target!r} row, e.g. {sample}: {phase} would "
            f"lose those values. Give those rows a {target} row, or clear the values, then {phase} again")


class DisagreeingRowsError(ValidationError):
    """move_column: rows sharing one target row hold different values (it can hold one)."""

    def __init__(self, table: str, column: str, target: str, key: str, sample: str):
        self.table, self.column, self.target, self.key, self.sample = table, column, target, key, sample
        super().__init__(
            f"rows of {table!r} that share one {target!r} row ({key}) hold different {column} values ({sample}); "
            f"{target} can hold only one. Make them agree (NULL counts as a value), then expand again")
