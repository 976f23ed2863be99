"""The simulator's own speed: one change, three databases, 2,000 concurrent writes per phase.

    python benchmarks/simulator.py [--writes 2000] [--dialect sqlite postgresql mysql]

Runs `crossfade verify` on Glance's images.is_public -> visibility change (examples/glance) and
prints the wall time per database and in all. Target: under 60 s for all three together.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from _common import DIALECTS, URLS, markdown

from crossfade.loader import load_changes
from crossfade.testing import Settings, verify

GLANCE = Path(__file__).resolve().parents[1] / "examples" / "glance" / "changes"
TARGET_SECONDS = 60.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=2000, help="writes per phase")
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    args = parser.parse_args(argv)
    loaded = load_changes(GLANCE)
    [change], [simulated] = loaded.changes, loaded.simulations
    # Databases of its own: the simulator rebuilds `images`, which the other benchmarks use too.
    urls = {"sqlite": f"sqlite:///{tempfile.mkdtemp(prefix='crossfade-sim-')}/sim.db"} | {
        name: sa.make_url(url).set(database="crossfade_bench_sim").render_as_string(hide_password=False)
        for name, url in URLS.items()}
    settings = Settings(writes_per_phase=args.writes, values=simulated.values)
    print(f"# simulator: {change.id}, {args.writes} writes per phase, 2 workers per release")
    print(f"# python benchmarks/simulator.py --writes {args.writes} --dialect {' '.join(args.dialect)}")
    print()
    rows, started = [], time.perf_counter()
    for dialect in args.dialect:
        report = verify(change, simulated.release_n, simulated.release_n1, [urls[dialect]], settings)
        [result] = report.results
        stall = result.checks["latency"].summary
        rows.append([dialect, f"{result.seconds:.1f}", str(result.writes), "ok" if result.ok else "FAIL", stall])
    total = time.perf_counter() - started
    rows.append(["all", f"{total:.1f}", str(sum(int(r[2]) for r in rows)), "", 
                 ("ok" if total < TARGET_SECONDS else "MISS") + f" < {TARGET_SECONDS:.0f} s"])
    print(markdown(["database", "seconds", "writes", "checks", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
