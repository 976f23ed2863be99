"""The simulator's results: one CheckResult per check and database, printed or as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

CHECKS = (
    ("phases", "every phase ran to the end"),
    ("no refused writes", "release N never refused; release N+1 never refused after expand"),
    ("sync law", "after every step, every row satisfies A = down(B)"),
    ("no lost writes", "the final rows agree with every worker's journal"),
    ("clean contract", "schema equals release N+1's; no trigger, function or state left"),
    ("latency", "write latency per phase; the longest stall"),
)
# Checks a change has only where it has such ops (crossfade.testing.computed).
OWN_CHECKS = (
    ("python backfill", "after migrate every row holds what the change's callable computes for it"),
    ("data steps", "each data step ran exactly once"),
)


@dataclass
class CheckResult:
    name: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"check": self.name, "ok": self.ok, "summary": self.summary, "details": self.details}


@dataclass(frozen=True)
class Span:
    """Something that lasted: a phase, or one of crossfade's steps (seconds since the run began)."""

    name: str
    start: float
    end: float
    kind: str = "phase"  # phase / ddl / backfill


@dataclass
class Timeline:
    """When everything in one simulation happened, in seconds since its first phase began: the
    phases, crossfade's steps (their window runs from the previous step's end to their own), and
    every statement each release's workers attempted, as (start, seconds, refused)."""

    phases: list[Span] = field(default_factory=list)
    steps: list[Span] = field(default_factory=list)
    writes: dict[str, list[tuple[float, float, bool]]] = field(default_factory=dict)
    max_stall: float | None = None  # the latency check's bound, in seconds

    @property
    def samples(self) -> int:
        return sum(len(samples) for samples in self.writes.values())

    def to_json(self) -> dict:
        rounded = {release: [[round(start, 4), round(seconds, 5), int(refused)] for start, seconds, refused in samples]
                   for release, samples in self.writes.items()}
        return {"phases": [[p.name, round(p.start, 4), round(p.end, 4)] for p in self.phases],
                "steps": [[s.name, round(s.start, 4), round(s.end, 4), s.kind] for s in self.steps],
                "writes": rounded, "max_stall": self.max_stall}


@dataclass
class DialectReport:
    dialect: str
    url: str
    seconds: float = 0.0
    checks: dict[str, CheckResult] = field(default_factory=dict)
    # phase -> release -> {"writes", "p50_ms", "p99_ms", "max_ms"}
    latency: dict[str, dict[str, dict]] = field(default_factory=dict)
    writes: int = 0
    # phase -> release -> {"retried", "ddl", "backfill", "writers"}: deadlocks the writers retried,
    # and while what they fell (crossfade.testing.deadlocks)
    deadlocks: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    timeline: Timeline | None = None  # the threaded simulator's; the HTML report draws it

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())

    def to_json(self) -> dict:
        return {"dialect": self.dialect, "url": self.url, "ok": self.ok, "seconds": round(self.seconds, 2),
                "writes": self.writes, "checks": [c.to_json() for c in self.checks.values()],
                "latency": self.latency, "deadlocks": self.deadlocks}


@dataclass
class Report:
    change_id: str
    results: list[DialectReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict:
        return {"change": self.change_id, "ok": self.ok, "results": [r.to_json() for r in self.results]}

    def failures(self) -> str:
        """Every failed check with its details, as text (an assertion message)."""
        lines = []
        for result in self.results:
            for check in result.checks.values():
                if not check.ok:
                    lines.append(f"[{result.dialect}] {check.name}: {check.summary}")
                    lines += ["  " + d.replace("\n", "\n  ") for d in check.details]
        return "\n".join(lines)

    def print(self, console: Console | None = None, *, details: int = 5) -> None:
        console = console or Console()
        matrix = Table(title=f"crossfade verify: {self.change_id}")
        matrix.add_column("check")
        for result in self.results:
            matrix.add_column(result.dialect)
        present = {name for result in self.results for name in result.checks}
        shown = [*CHECKS, *[(name, meaning) for name, meaning in OWN_CHECKS if name in present]]
        for name, _ in shown:
            matrix.add_row(name, *[_cell(result.checks.get(name)) for result in self.results])
        matrix.add_row("time", *[f"{r.seconds:.1f} s, {r.writes} writes" for r in self.results])
        console.print(matrix)
        console.print("[dim]" + "; ".join(f"{name}: {meaning}" for name, meaning in shown) + "[/]")
        for result in self.results:
            if result.latency:  # the Hypothesis mode writes one statement at a time: no latencies
                console.print(_latency_table(result))
            if result.deadlocks:
                console.print(_deadlock_table(result))
        for result in self.results:
            for check in result.checks.values():
                if not check.ok and check.details:
                    console.print(f"[red]{result.dialect}: {check.name}[/]")
                    for detail in check.details[:details]:
                        console.print("  " + detail.replace("\n", "\n  "), markup=False, highlight=False)
                    if len(check.details) > details:
                        console.print(f"  ... and {len(check.details) - details} more")


def _cell(check: CheckResult | None) -> str:
    if check is None:
        return "-"
    if not check.ok:
        return f"[red]FAIL[/] {check.summary}"
    return "[green]ok[/]" + ("" if check.summary == "ok" else f" {check.summary}")


def _latency_table(result: DialectReport) -> Table:
    table = Table(title=f"{result.dialect}: write latency per phase (ms)")
    for header in ("phase", "release", "writes", "p50", "p99", "max"):
        table.add_column(header, justify="left" if header in ("phase", "release") else "right")
    for phase, by_release in result.latency.items():
        for release, figures in by_release.items():
            table.add_row(phase, release, str(figures["writes"]), f"{figures['p50_ms']:.1f}",
                          f"{figures['p99_ms']:.1f}", f"{figures['max_ms']:.1f}")
    return table


def _deadlock_table(result: DialectReport) -> Table:
    table = Table(title=f"{result.dialect}: deadlocks retried per phase (1213)")
    for header in ("phase", "release", "retried", "during crossfade's DDL", "during backfill", "other writes"):
        table.add_column(header, justify="left" if header in ("phase", "release") else "right")
    for phase, by_release in result.deadlocks.items():
        for release, figures in by_release.items():
            table.add_row(phase, release, *[str(figures[k]) for k in ("retried", "ddl", "backfill", "writers")])
    return table
