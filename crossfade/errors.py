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
        # A dotted name is read as one identifier: the schema is named on the change.
        hint = " (to name a table's schema, use Change(..., schema=...))" if "." in table else ""
        super().__init__(f"table {table!r} does not exist{hint}")


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
    """down(up(a)) != a for some value a that release N can store; `note` says where a came from
    and what to do."""

    def __init__(self, table: str, columns: tuple[str, ...], value, up_value, back_value, note: str = ""):
        self.table, self.columns = table, columns
        self.value, self.up_value, self.back_value = value, up_value, back_value
        cols = ", ".join(f"{table}.{c}" for c in columns)
        super().__init__(
            f"round-trip law broken for {cols}: a={value!r} -> up(a)={up_value!r} "
            f"-> down(up(a))={back_value!r}, expected {value!r}" + (f" ({note})" if note else "")
        )


class GeneratedColumnError(ValidationError):
    def __init__(self, table: str, column: str, writer: str):
        self.table, self.column = table, column
        super().__init__(
            f"column {table}.{column} is a generated column: the database computes it, and {writer} would write "
            "it. Leave it out of the change: add a generated column with plain DDL after contract, and drop an "
            "existing one first (recreate it over the new columns after contract)"
        )


class ExistingRowsError(RoundTripError):
    """Rows already in the table break the round-trip law: the sync law would not hold for them
    from the moment the backfill derives their new columns. `value` and the rest are the first
    such row's; `rows` counts them and `keys` names a few by primary key."""

    def __init__(self, table: str, columns: tuple[str, ...], rows: int, keys: list, value, up_value, back_value):
        self.rows, self.keys = rows, keys
        shown = ", ".join(repr(k) for k in keys)
        super().__init__(table, columns, value, up_value, back_value,
                         f"{rows} existing row(s) break it, keys {shown}{', ...' if rows > len(keys) else ''}; "
                         "fix those rows or choose transforms that keep their values")


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


class IdentifierError(ValidationError):
    """A name the change would create that the database cannot hold exactly as written."""

    def __init__(self, kind: str, table: str, name: str, dialect: str, reason: str):
        self.kind, self.table, self.name, self.dialect = kind, table, name, dialect
        subject = f"table {name!r}" if kind.endswith("table") else f"{kind} {name!r} of table {table!r}"
        super().__init__(f"{subject} cannot be named so on {dialect}: {reason}; choose a shorter or plainer name")


@dataclass(frozen=True)
class Dependent:
    """A database object that uses a column contract drops: dropping the column would fail, drop
    the object with it, or leave it broken."""

    kind: str  # "view", "rule", "generated column", "index", "foreign key", "check constraint", "trigger"
    name: str  # as the database names it; for a rule, trigger or constraint also its table
    column: str  # table.column it uses

    def describe(self) -> str:
        return f"{self.kind} {self.name} (uses {self.column})"


_DEPENDENT_ADVICE = {
    "view": "recreate it over the new columns (or drop it)",
    "materialized view": "recreate it over the new columns (or drop it)",
    "rule": "drop it, or recreate it over the new columns",
    "generated column": "drop it, or recreate it over the new columns",
    "index": "drop it, or replace it by one over the new columns (ops.create_index in this change)",
    "foreign key": "drop the foreign key, or point it at a column that stays",
    "check constraint": "drop it, or replace it by one over the new columns (ops.add_check in this change)",
    "unique constraint": "drop it, or replace it by one over the new columns (ops.add_unique in this change)",
    "trigger": "drop it, or recreate it without the column",
}


class DependentObjectsError(ValidationError):
    """Contract would drop columns that other objects use; raised before contract's first DDL."""

    def __init__(self, dependents: Sequence[Dependent]):
        self.dependents = list(dependents)
        kinds = sorted({d.kind for d in self.dependents})
        found = "; ".join(d.describe() for d in self.dependents)
        advice = "; ".join(f"{kind}: {_DEPENDENT_ADVICE.get(kind, 'drop it')}" for kind in kinds)
        self.detail = f"it drops columns that other objects use: {found}. What to do: {advice}"
        super().__init__(f"contract refused before any DDL: {self.detail}; then run contract again")


class SchemaError(ValidationError):
    """The database schema a change's tables are in cannot be told, or is not supported."""

    def __init__(self, schema: str | None, reason: str):
        self.schema = schema
        super().__init__(reason)


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


class OperatorBusyError(CrossfadeError):
    """Another crossfade holds the operator lock (crossfade/oplock.py); the CLI exits with BUSY (75)."""

    def __init__(self, holder: str, waited: float):
        self.holder, self.waited = holder, waited
        waited_text = f"waited {waited:.1f}s; " if waited else ""
        super().__init__(f"another crossfade is running on this database: {holder}. Nothing was changed; "
                         f"{waited_text}run again when it is done, or pass --wait SECONDS")


class OperatorLockLostError(CrossfadeError):
    """The operator lock was taken over while this phase ran (its heartbeat could not reach the
    database for longer than the stale timeout): stop before another step."""

    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(f"this crossfade lost its operator lock (its heartbeat could not be saved in time) to "
                         f"{holder}; stopped between two steps; run the phase again when that one is done")


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


class ForeignKeyActionsError(ValidationError):
    """A foreign key of the declared name exists with other ON DELETE / ON UPDATE actions."""

    def __init__(self, table: str, name: str, found: str, declared: str):
        self.table, self.name, self.found, self.declared = table, name, found, declared
        super().__init__(f"foreign key {name!r} on table {table!r} exists with {found}, the change declares "
                         f"{declared}: drop it (or declare its actions), then contract again")


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


class ConflictingSourcesError(ValidationError):
    """derive_column: one target row's sources hold different values; raised before any DDL."""

    def __init__(self, table: str, column: str, count: int, sample: str):
        self.table, self.column, self.count, self.sample = table, column, count, sample
        super().__init__(
            f"{count} row(s) of {table!r} would get conflicting {column} values from their sources ({sample}); "
            f"derive_column keeps one value per row and would drop the others. Make each row's sources agree "
            "(NULL means no value), then expand again")


class DriftedRowsError(ValidationError):
    """Rows break the sync law or a link law: written while the triggers did not fire
    (`session_replication_role = replica`, a disabled or dropped trigger, a cascade, a table
    rebuilt without them). Raised before the phase's first DDL (contract: before dropping anything),
    naming the rows and the statements that fix them; `findings` are datacheck.Finding objects."""

    def __init__(self, findings: Sequence, phase: str, done: str = "nothing was dropped"):
        self.findings, self.phase = list(findings), phase
        self.count = sum(f.count for f in self.findings)
        details = " | ".join(f.describe() for f in self.findings)
        super().__init__(
            f"{phase} refused, {done}: {self.count} row(s) break the law the triggers keep (written while they did "
            f"not fire: session_replication_role = replica, a disabled or dropped trigger, a table rebuild): "
            f"{details}. Then run {phase} again (crossfade check --deep re-checks every row)")
