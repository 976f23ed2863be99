"""Start-up time of the crossfade command against Alembic's, measured in the same run.

    python benchmarks/startup.py [--runs 15]

Times `python -m crossfade.cli --help` (this checkout's crossfade) and `python -m alembic --help`,
interleaved, each a fresh process of the same interpreter (no shell or pyenv shim in between),
and prints the medians and their ratio. Target: crossfade at most 1.5x Alembic's.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "crossfade --help": [sys.executable, "-m", "crossfade.cli", "--help"],
    "alembic --help": [sys.executable, "-m", "alembic", "--help"],
}
TARGET_RATIO = 1.5


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="runs of each command, interleaved")
    args = parser.parse_args(argv)
    for command in COMMANDS.values():  # warm the file cache and the bytecode
        _seconds(command)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            times[name].append(_seconds(command))
    medians = {name: statistics.median(found) for name, found in times.items()}
    print(f"# python benchmarks/startup.py --runs {args.runs}")
    print("| command | median s | min s | max s |")
    print("| --- | --- | --- | --- |")
    for name, found in times.items():
        print(f"| {name} | {medians[name]:.3f} | {min(found):.3f} | {max(found):.3f} |")
    ratio = medians["crossfade --help"] / medians["alembic --help"]
    verdict = "ok" if ratio <= TARGET_RATIO else "MISS"
    print(f"\ncrossfade / alembic: {ratio:.2f} ({verdict}: target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
