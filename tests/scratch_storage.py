"""Scratch files in memory: the SQLite databases, Alembic projects and child pytest runs of the
suite live under /dev/shm when the machine has it.

A SQLite commit in rollback-journal mode syncs the disk several times while it holds the write
lock; on a shared machine's disk each sync can take tens of milliseconds, and the simulator's
writers then queue behind them (a SQLite simulator run took 52 s on disk, 2.5 s in memory). Locks,
triggers and transactions behave the same in memory; only surviving a power cut differs, which no
test is about. Set before any temporary directory is made; child processes inherit TMPDIR.
"""

from __future__ import annotations

import os
import tempfile

MEMORY = "/dev/shm"


def use_memory_for_scratch_files() -> None:
    if "TMPDIR" in os.environ or not os.access(MEMORY, os.W_OK):
        return  # the developer chose, or there is no writable tmpfs here
    os.environ["TMPDIR"] = MEMORY
    tempfile.tempdir = None  # gettempdir() caches its first answer


use_memory_for_scratch_files()
