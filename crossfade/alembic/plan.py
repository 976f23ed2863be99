"""Every phase's SQL for an Alembic project's revisions (`crossfade plan PROJECT --sql`).

Per revision: expand is its plain additive operations then the change's DDL and triggers,
migrate the change's backfill, contract the change's contract then the plain destructive
operations and the alembic_version stamp, rollback the change's rollback then the plain
additive operations reversed. Without a database every revision is planned from the first,
each on the tables the ones before it leave (crossfade.alembic.snapshot); with `--url`, the
revisions the database has not started, on its live tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import sqlalchemy as sa

from .. import plan as planning
from .. import state
from ..dialects import PLAN_NAMES, TriggerDialect, for_dialect, offline, plan_name
from ..engines import open_engine
from ..errors import CrossfadeError
from ..schema import Schema
from . import render, snapshot
from .classify import classify, undo
from .project import Project, Revision
from .recording import Statements, offline_context
from .runner import NOT_STARTED


def plan_project(project: Project, dialects: Sequence[str], url: str | None, batch_size: int | None,
                 note: Callable[[str], None]) -> Iterator[tuple[TriggerDialect, list[planning.Section]]]:
    """(dialect, sections) for each database the plan is for; `note` says what is left out.
    Without `url`: every revision from base, for each of `dialects` (names `offline` takes).
    With it: the revisions the database has not started; `dialects`, if given, must name it."""
    if url is None:
        note("no database: every revision is planned from base, applied or not (give --url, CROSSFADE_URL or "
             "sqlalchemy.url to plan only the revisions the database has not run)")
        for name in dialects or PLAN_NAMES:
            target = offline(name)
            revisions = [project.revision(r, target.sa_dialect) for r in project.history()]
            yield target, plan_revisions(project, revisions, target, Schema(sa.MetaData()), batch_size)
        return
    engine = open_engine(url)
    try:
        target = for_dialect(engine.dialect)
        if dialects and plan_name(target) not in dialects:
            raise CrossfadeError(f"--dialect {', '.join(dialects)} does not match the {plan_name(target)} "
                                 "database the URL names")
        with engine.connect() as conn:
            history = project.history(lower=project.current(conn) or "base")
            pending = [project.revision(r, conn.dialect) for r in history]
            phases = {r.id: state.load(conn, r.id).phase for r in pending}
            schema = Schema.reflect(conn, set().union(set(), *(r.tables() for r in pending)))
    finally:
        engine.dispose()
    planned = [r for r in pending if phases[r.id] in NOT_STARTED]
    for revision in pending:
        if revision not in planned:
            note(f"{revision.id} is {phases[revision.id].value} in this database; not planned "
                 "(plan --dialect without --url shows all of it)")
    yield target, plan_revisions(project, planned, target, schema, batch_size, live=True)


def plan_revisions(project: Project, revisions: list[Revision], target: TriggerDialect, schema: Schema,
                   batch_size: int | None, *, live: bool = False) -> list[planning.Section]:
    """The sections of each revision in turn; `schema` (the tables before the first) moves on.
    A revision's own `metadata` states its release N's tables, unless they are `live` ones."""
    sections: list[planning.Section] = []
    for revision in revisions:
        stated = getattr(revision.module, "metadata", None)
        if isinstance(stated, sa.MetaData) and not live:
            snapshot.merge(schema, stated)
        sections += _revision_sections(project, revision, target, schema, batch_size)
    return sections


def _revision_sections(project: Project, revision: Revision, target: TriggerDialect, schema: Schema,
                       batch_size: int | None) -> list[planning.Section]:
    phases = classify(revision.plain, schema, revision.id)  # what expand would refuse, the plan refuses
    section = {name: planning.Section(revision.id, name) for name in planning.PHASES}
    for operation in phases.expand:
        section["expand"].steps += _planned(operation, target, schema)
        snapshot.apply(schema, operation)
    release_n = schema.copy()  # with the plain additions: what rollback returns to
    if revision.change is not None:
        for planned in planning.build_plan([revision.change], target, schema, batch_size=batch_size):
            section[planned.phase].steps += planned.steps
            section[planned.phase].note = planned.note
        snapshot.apply_change(schema, revision.change)
    for operation in phases.contract:
        section["contract"].steps += _planned(operation, target, schema)
        snapshot.apply(schema, operation)
    section["contract"].steps.append(_stamp(project, revision, target))
    for operation in reversed(phases.expand):
        reverse = undo(operation, revision.id)
        if reverse is not None:
            section["rollback"].steps += _planned(reverse, target, release_n)
            snapshot.apply(release_n, reverse)
    section["expand"].note = "plain additive operations, then the change's additive DDL and sync triggers"
    section["contract"].note = ("only when no node of release N is left; the plain destructive operations "
                                "follow the change's, then alembic_version")
    section["migrate"].note = section["migrate"].note or "nothing to backfill"
    return list(section.values())


def _planned(operation, target: TriggerDialect, schema: Schema) -> list[planning.PlannedStep]:
    def table(name: str) -> sa.Table | None:
        return schema.table(name) if schema.has_table(name) else None
    return [planning.PlannedStep(step.name, list(step.sql)) for step in render.steps(operation, target, table)]


def _stamp(project: Project, revision: Revision, target: TriggerDialect) -> planning.PlannedStep:
    down = project.script.get_revision(revision.id).down_revision
    down = down if isinstance(down, str) else None  # a merge revision: stamped as a new head
    output = Statements()
    offline_context(target.sa_dialect, output, starting_rev=down, version_table=project.version_table) \
        .stamp(project.script, revision.id)
    return planning.PlannedStep(f"stamp {project.version_table} {revision.id}", output.statements)
