"""Every phase's SQL for review, without a database (DESIGN section 5: `plan --sql`).

The plan simulates what the runner does on a schema snapshot (release N's metadata, or a live
database's reflected tables): expand's DDL mutates the snapshot into the post-expand schema, the
triggers and the backfill are rendered from that, and contract (or rollback) continues from it.
Several changes are planned one after the other, each starting from the schema the previous
one's contract left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from . import backfill, checks, compute
from .change import Change
from .ddl import SetNullable, Step
from .dialects import TriggerDialect, offline
from .dialects.base import DbObject
from .schema import Schema

PHASES = ("expand", "migrate", "contract", "rollback")


@dataclass
class PlannedStep:
    name: str
    sql: list[str]
    notes: list[str] = field(default_factory=list)  # rendered as `--` comments before the SQL
    instant: bool = False  # catalog only: no row read or copied, whatever the table's size

    @property
    def title(self) -> str:
        return f"{self.name} [instant]" if self.instant else self.name


@dataclass
class Section:
    change_id: str
    phase: str
    steps: list[PlannedStep] = field(default_factory=list)
    note: str = ""

    def ddl_summary(self) -> str:
        """How many DDL statements the phase runs, and how many are instant: on Galera each one
        runs on every node at once and aborts conflicting writes there (DESIGN section 8)."""
        if self.phase == "migrate":
            return ""
        count = sum(len(step.sql) for step in self.steps)
        instant = sum(len(step.sql) for step in self.steps if step.instant)
        return f"{count} DDL statement{'s' * (count != 1)}, {instant} instant"


def plan(changes: Sequence[Change], dialect_name: str | TriggerDialect,
         metadata: sa.MetaData | Schema, *, batch_size: int | None = None) -> str:
    """Every phase's DDL, trigger and backfill SQL for `changes`, as one reviewable script."""
    dialect = offline(dialect_name) if isinstance(dialect_name, str) else dialect_name
    return render_sql(build_plan(changes, dialect, metadata, batch_size=batch_size), dialect)


def build_plan(changes: Sequence[Change], dialect: TriggerDialect, metadata: sa.MetaData | Schema,
               *, batch_size: int | None = None) -> list[Section]:
    snapshot = metadata.copy() if isinstance(metadata, Schema) else Schema.from_metadata(metadata)
    sections: list[Section] = []
    for change in changes:
        sections += _plan_change(change, dialect, snapshot, batch_size)
    _mark_lost_work(sections, dialect)
    return sections


def render_sql(sections: list[Section], dialect: TriggerDialect) -> str:
    out = [f"-- crossfade plan for {dialect.name}"
           + (" (MariaDB)" if getattr(dialect, "is_mariadb", False) else ""),
           "-- Statements end with `;`. A statement with `;` inside (a trigger or function body)",
           "-- is marked; send it whole, as a driver does (no DELIMITER needed).",
           *[f"-- {line}" for line in dialect.session_notes()], ""]
    for section in sections:
        out.append(f"-- crossfade plan: {section.change_id} / {section.phase}")
        if section.note:
            out.append(f"-- {section.note}")
        if section.ddl_summary():
            out.append(f"-- {section.ddl_summary()}")
        if not section.steps:
            out.append("-- (nothing to do)")
        for step in section.steps:
            out.append(f"-- {step.title}")
            out += [f"--   {note}" for note in step.notes]
            for statement in step.sql:
                out += _statement(statement)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- simulation ----------------------------------------------------------------------------

def _plan_change(change: Change, dialect: TriggerDialect, snapshot: Schema, batch_size: int | None) -> list[Section]:
    change.validate(snapshot)
    release_n = snapshot.copy()

    expand = Section(change.id, "expand", note="additive DDL, then the sync triggers; release N keeps working")
    expand.steps += _ddl(dialect.steps(change.expand_intents(snapshot), snapshot))
    relaxed = dialect.columns_to_relax(release_n, change.table_syncs(snapshot))
    expand.steps += _ddl(dialect.steps([SetNullable(t, c, True) for t, c in relaxed], snapshot))
    syncs = change.table_syncs(snapshot, relaxed)
    links = dialect.active_links(change.links(snapshot))
    objects = dialect.compile_triggers(syncs)
    objects += [o for link in links for o in dialect.cross_table_objects(link, snapshot)]
    for title, statements in checks.install_steps(dialect, {o.name: o for o in objects}, links, snapshot):
        expand.steps.append(PlannedStep(title, statements, _locks(dialect.trigger_locks)))

    migrate = Section(change.id, "migrate", note="backfill existing rows in keyed batches, resumable")
    for table in sorted(t for t, ts in syncs.items() if ts.groups or ts.fills):
        migrate.steps.append(_backfill_step(dialect, backfill.sync_job(syncs[table]), batch_size))
    for link in links:
        job = backfill.link_job(dialect, link, snapshot.table(link.source), snapshot.table(link.target))
        migrate.steps.append(_backfill_step(dialect, job, batch_size))

    for work in change.migrate_work(snapshot):
        migrate.steps.append(_python_step(dialect, snapshot, work, batch_size))

    after_expand = snapshot.copy()
    contract = Section(change.id, "contract", note="only when no node of release N is left")
    contract.steps += _ddl(dialect.steps(change.before_dropping_triggers(snapshot), snapshot))
    contract.steps += _drop_triggers(dialect, objects, change)
    contract.steps += _ddl(dialect.steps(change.after_dropping_triggers(snapshot), snapshot))

    rollback = Section(change.id, "rollback", note="instead of contract: undoes expand; release N's data is intact")
    rollback.steps += _drop_triggers(dialect, objects, change)
    intents = change.rollback_intents(after_expand) + [SetNullable(t, c, False) for t, c in relaxed]
    rollback.steps += _ddl(dialect.steps(intents, after_expand))
    return [expand, migrate, contract, rollback]


def _drop_triggers(dialect: TriggerDialect, objects: list[DbObject], change: Change) -> list[PlannedStep]:
    return [PlannedStep(f"drop triggers on {table}",
                        dialect.drop_statements([(o.kind, o.name, o.table) for o in objects if o.table == table]),
                        _locks(dialect.trigger_locks))
            for table in change.trigger_drop_order({o.table for o in objects})]


def _backfill_step(dialect: TriggerDialect, job: backfill.Job, batch_size: int | None) -> PlannedStep:
    key = ", ".join(getattr(k, "name", str(k)) for k in dialect.batch_key(job.table))
    statements = [dialect.compile(getattr(s, "sql", s)) for s in job.statements(sa.true())]
    size = (f"{batch_size} rows" if batch_size is not None else
            f"sized to take about {backfill.DEFAULT_BATCH_SECONDS * 1000:.0f} ms, at most {backfill.MAX_BATCH_ROWS} rows")
    notes = [f"each batch: one transaction ({size}), keyed by ({key}):",
             f"AND ({key}) > <last key of the previous batch> AND ({key}) <= <key of the batch's last row>",
             "rows release N+1 already wrote are left alone (the new columns are not NULL there)"]
    if job.guarded:
        notes.append("the other table's cross-table triggers are off for the batch's session (they would only "
                     "copy back what the batch copies)")
    return PlannedStep(f"backfill {job.name}", statements, notes + _locks(dialect.backfill_locks))


def _python_step(dialect: TriggerDialect, snapshot: Schema, work, batch_size: int | None) -> PlannedStep:
    """A Python backfill (its batches' read shown; the values come from Python) or a data step
    (its SQL shown, or what Python runs)."""
    if isinstance(work, compute.DataStep):
        statement = work.statement()
        notes = [(f"runs {work.describe_run()} once, in one transaction that records it done: a kill undoes it and "
                 "a rerun runs it again; a finished step never runs twice"),
                 f"writes {', '.join(work.tables)} past the change's blocks"]
        return PlannedStep(f"data step {work.name}", [dialect.compile(statement)] if statement is not None else [],
                           notes)
    table = snapshot.table(work.table)
    step = _backfill_step(dialect, backfill.Job(work.name, table, lambda where: [
        compute.read_batch(table, work, dialect.batch_key(table), where)]), batch_size)
    step.notes[1:1] = [(f"Python computes {', '.join(work.columns)} from each batch's rows "
                       f"({', '.join(work.reads)}), then one UPDATE per row where they are still NULL, "
                       "past the change's blocks")]
    return step


def _ddl(steps: list[Step]) -> list[PlannedStep]:
    return [PlannedStep(step.name, list(step.sql), _locks(step.locks), step.instant) for step in steps]


def _locks(what: str) -> list[str]:
    """The note saying what a step locks (every step has one, so a reviewer sees the cost)."""
    return [f"locks: {what}"] if what else []


def _mark_lost_work(sections: list[Section], dialect: TriggerDialect) -> None:
    """A step whose finished work one transaction can throw away at its final lock says so on its
    `locks:` line (MariaDB's online index builds and table rebuilds, its table copies): on a big
    table that is minutes of work lost, so a reviewer picks a quiet hour for it."""
    for step in (step for section in sections for step in section.steps):
        risk = dialect.lost_work_risk(step.sql)
        if risk:
            step.notes = [f"{note}; {risk}" if note.startswith("locks: ") else note for note in step.notes]


def _statement(sql: str) -> list[str]:
    text = sql.strip().rstrip(";")
    if ";" in text:
        return ["-- >>> one statement (its body holds `;`)", text + ";", "-- <<< end of statement"]
    return [text + ";"]


__all__ = ["PHASES", "PlannedStep", "Section", "build_plan", "plan", "render_sql"]
