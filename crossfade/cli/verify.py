"""`crossfade verify` (prove a change on scratch databases) and `crossfade demo`."""

from __future__ import annotations

from collections.abc import Callable

import click
from rich.markup import escape

from ..errors import CrossfadeError, MissingDependencyError
from .common import (
    PATH_HELP,
    PROBLEM,
    UP_TO_DATE,
    Command,
    changes_source,
    clean_errors,
    config_option,
    err,
    out,
    path_argument,
    url_option,
)


@click.command(cls=Command, short_help="Prove the changes: releases N and N+1 write through every phase.", epilog=PATH_HELP, examples="""
crossfade verify examples/glance/changes --url sqlite:///scratch.db
crossfade verify -c alembic.ini --url sqlite:///s.db --url postgresql://postgres@localhost/scratch
crossfade verify changes/ --url mysql+pymysql://root@node1/s,mysql+pymysql://root@node2/s   a cluster
""")
@path_argument
@config_option
@click.option("--url", "urls", multiple=True, required=True, metavar="URL",
              help="A scratch database to simulate on (repeat for a matrix). Its tables of the change are "
                   "dropped and rebuilt (and an Alembic project's alembic_version), so verify never reads "
                   "CROSSFADE_URL. A cluster's nodes as `--url node1,node2,node3`: crossfade's DDL on the "
                   "first, release N's writers on the second, release N+1's on the third (with two, both on "
                   "the second).")
@click.option("--writes", type=click.IntRange(min=1), default=2000, show_default=True, metavar="N",
              help="Writes per phase, by all workers.")
@click.option("--seed-rows", type=click.IntRange(min=0), default=200, show_default=True, metavar="N",
              help="Rows of release N before expand.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, metavar="N",
              help="Writer threads per release.")
@click.option("--seed", type=int, default=0, show_default=True, metavar="N", help="Random seed of the writes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--hypothesis", is_flag=True,
              help="Search sequential writes and phases with Hypothesis instead, and shrink a failure to a "
                   "minimal sequence (needs the hypothesis package).")
@click.option("--examples", type=click.IntRange(min=1), default=15, show_default=True, metavar="N",
              help="With --hypothesis: sequences to try.")
# --- the latency bound and the HTML report (crossfade.testing.html_report) ---
@click.option("--max-stall", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              envvar="CROSSFADE_MAX_STALL", show_envvar=True,
              metavar="SECONDS", help="The latency check fails when any one write takes longer.")
@click.option("--report", "report_file", type=click.Path(), default=None, metavar="FILE.html",
              help="Also write one self-contained HTML page: the check matrix and every write's latency over "
                   "time, phases shaded and crossfade's DDL steps marked.")
def verify(path: str | None, config: str | None, urls: tuple[str, ...], writes: int, seed_rows: int, workers: int,
           seed: int, as_json: bool, hypothesis: bool, examples: int, max_stall: float,
           report_file: str | None) -> None:
    """Prove each change: release N and N+1 write at once through every phase; exit 1 on any failure.
    An Alembic project's revisions run whole, their plain Alembic operations at their phase."""
    from ..engines import check_url
    from ..loader import load_changes
    from ..testing import Report, Settings, simulator
    from ..testing.nodes import Nodes

    with clean_errors():
        if report_file is not None:  # refused before anything runs, as any other bad input
            from ..testing.html_report import check_destination
            check_destination(report_file)
        changes = changes_source(path, config)
        hypothesis_verify = _hypothesis_verify() if hypothesis else None
        databases = [Nodes.parse(url) for url in urls]
        for nodes in databases:
            for url in nodes.urls:
                check_url(url)
            if hypothesis and len(nodes.urls) > 1:
                raise CrossfadeError("--hypothesis writes one statement at a time: give one URL per database")
        loaded = load_changes(changes)
        reports: list[Report] = []
        for change, simulated in zip(loaded.changes, loaded.simulations):
            if simulated.release_n is None or simulated.release_n1 is None:
                raise CrossfadeError(f"{change.id}: its module must define `metadata` (release N) and "
                                     "`metadata_n1` (release N+1) for verify")
            settings = Settings(seed_rows=seed_rows, writes_per_phase=writes, workers=workers, seed=seed,
                                values=simulated.values, max_stall=max_stall)
            phase_line = (lambda dialect, phase: None) if as_json else (
                lambda dialect, phase: err.print(f"  [dim]{dialect}: {phase}[/dim]"))
            if hypothesis_verify is not None:
                reports.append(Report(change.id, [
                    hypothesis_verify(change, simulated.release_n, simulated.release_n1, url,
                                      values=simulated.values, max_examples=examples, seed=seed,
                                      phases=simulated.phases)
                    for url in urls]))
            else:
                reports.append(simulator.verify(change, simulated.release_n, simulated.release_n1, databases,
                                                settings, on_phase=phase_line, phases=simulated.phases))
    if report_file is not None:
        from ..testing.html_report import write_report
        write_report(report_file, reports)
        err.print(f"  [dim]report: {escape(report_file)}[/dim]")
    if as_json:
        out.print_json(data=[r.to_json() for r in reports])
    else:
        for report in reports:
            report.print(out)
    raise click.exceptions.Exit(UP_TO_DATE if all(r.ok for r in reports) else PROBLEM)


def _hypothesis_verify() -> Callable:
    """The Hypothesis mode, which needs the hypothesis package (a test dependency)."""
    try:
        from ..testing.stateful import hypothesis_verify
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "hypothesis":
            raise
        raise MissingDependencyError("hypothesis", "verify --hypothesis") from None
    return hypothesis_verify


@click.command(cls=Command, short_help="A narrated rolling upgrade on a scratch database.", examples="""
crossfade demo                                    on a temporary SQLite file
crossfade demo --url postgresql://postgres@localhost/scratch --rows 100000 --keep
""")
@url_option("Run on this database instead of a temporary SQLite file (it must have no `images` table).")
@click.option("--rows", type=click.IntRange(min=1), default=1000, show_default=True, metavar="N",
              help="Rows of release N to start with.")
@click.option("--keep", is_flag=True, help="Keep the demo's table and database afterwards.")
def demo(url: str | None, rows: int, keep: bool) -> None:
    """A complete rolling upgrade of Glance's is_public -> visibility, narrated."""
    from ..demo import run_demo

    with clean_errors():
        run_demo(url, console=out, rows=rows, keep=keep)


COMMANDS = [verify, demo]
