"""`crossfade plan`: what each phase will do, without changing any database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from ..errors import ChangeLoadError, CrossfadeError
from .common import (
    PATH_HELP,
    URL_VARIABLE,
    Command,
    changes_source,
    clean_errors,
    config_option,
    from_environment,
    note,
    out,
    path_argument,
    project_url,
    url_option,
)

if TYPE_CHECKING:
    from rich.tree import Tree

    from .. import plan as planning
    from ..change import Change
    from ..dialects import TriggerDialect
    from ..loader import LoadedChanges
    from ..schema import Schema

# crossfade.dialects.PLAN_NAMES, repeated so that --help does not import the dialects
# (tests/test_cli.py holds them equal).
PLAN_DIALECTS = ("postgresql", "mariadb", "mysql", "sqlite")

EXAMPLES = """
crossfade plan examples/glance/changes                 every phase's steps, for each database
crossfade plan changes/ --sql --dialect mariadb        the statements MariaDB will run
crossfade plan -c alembic.ini --sql --url $DB_URL      the revisions this database has not run
"""


@click.command(cls=Command, short_help="Show what each phase will do, without changing anything.", examples=EXAMPLES, epilog=PATH_HELP)
@path_argument
@config_option
@click.option("--sql", is_flag=True, help="Print every phase's SQL, not just the steps.")
@click.option("--dialect", type=click.Choice(PLAN_DIALECTS, case_sensitive=False),
              help="Render for this database, offline (default: all four). MariaDB's SQL differs from "
                   f"MySQL's. Not with --url; {URL_VARIABLE} is left aside when --dialect is given.")
@url_option("Plan against this live database's tables (only the changes or revisions it has not "
            "started), instead of the modules' `metadata`.")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="ROWS",
              help="Show fixed backfill batches of this size (default: sized by time).")
@click.pass_context
def plan(ctx: click.Context, path: str | None, config: str | None, sql: bool, dialect: str | None,
         url: str | None, batch_size: int | None) -> None:
    """Show what each phase will do, without changing any database."""
    from .. import plan as planning
    from ..alembic.locate import find_project
    from ..loader import load_changes

    dialects = [dialect.lower()] if dialect else []
    if dialects and url and from_environment(ctx.get_parameter_source("url")):
        url = None  # --dialect asks for an offline plan; the environment's database is not the one meant
    with clean_errors():
        changes = changes_source(path, config)
        project = find_project(changes)  # an Alembic project: crossfade/alembic/plan.py
        if project is not None:
            from ..alembic.plan import plan_project

            if url is None and not dialects:
                url = project_url(project)
            planned = plan_project(project, dialects, url, batch_size, note=note)
        else:
            planned = ((target, planning.build_plan(pending, target, schema, batch_size=batch_size))
                       for target, schema, pending in _plan_targets(load_changes(changes), dialects, url))
        for target, sections in planned:
            if sql:
                click.echo(planning.render_sql(sections, target))
            else:
                out.print(_plan_tree(sections, target))


def _plan_targets(loaded: LoadedChanges, dialects: Sequence[str],
                  url: str | None) -> Iterator[tuple[TriggerDialect, Schema, list[Change]]]:
    """(dialect, release N's schema, changes to plan) for each database the plan is for."""
    from .. import state
    from ..dialects import PLAN_NAMES, for_dialect, offline, plan_name
    from ..schema import Schema
    from ..state import Phase
    from .common import open_database

    if url is None:
        if loaded.metadata is None:
            raise ChangeLoadError("the change modules define no `metadata` (release N's sqlalchemy.MetaData); "
                                  "add one, or plan against a live database with --url")
        for name in dialects or PLAN_NAMES:
            yield offline(name), Schema.from_metadata(loaded.metadata), loaded.changes
        return
    engine = open_database(url)
    try:
        target = for_dialect(engine.dialect)
        if dialects and plan_name(target) not in dialects:
            raise CrossfadeError(f"--dialect {dialects[0]} does not match the {plan_name(target)} database at --url")
        with engine.connect() as conn:
            schema = Schema.reflect(conn, set().union(*(c.tables() for c in loaded.changes)))
            phases = {c.id: state.load(conn, c.id).phase for c in loaded.changes}
    finally:
        engine.dispose()
    # The live tables are release N's only for changes this database has not started.
    pending = [c for c in loaded.changes if phases[c.id] in (Phase.PENDING, Phase.ROLLED_BACK)]
    for change in loaded.changes:
        if change not in pending:
            note(f"{change.id} is {phases[change.id].value} in this database; not planned "
                 "(plan --dialect without --url shows all of it)")
    yield target, schema, pending


def _plan_tree(sections: list[planning.Section], target: TriggerDialect) -> Tree:
    from rich.tree import Tree

    from ..dialects import plan_name

    tree = Tree(f"[bold]plan for {plan_name(target)}[/bold] [dim](add --sql for the statements)[/dim]")
    changes: dict[str, Tree] = {}
    for section in sections:
        node = changes.get(section.change_id) or tree.add(f"[bold]{escape(section.change_id)}[/bold]")
        changes[section.change_id] = node
        summary = f"; {section.ddl_summary()}" if section.ddl_summary() else ""
        phase = node.add(f"[cyan]{section.phase}[/cyan] [dim]{escape(section.note + summary)}[/dim]")
        for step in section.steps:
            phase.add(f"{escape(step.title)} [dim]({len(step.sql)} statement{'s' * (len(step.sql) != 1)})[/dim]")
    return tree


COMMANDS = [plan]
