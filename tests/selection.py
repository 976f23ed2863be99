"""`--quick`: the edit-test loop's selection, the suite without its slow and cluster-bound tests.

It leaves out every test marked `slow` (long simulator and Hypothesis runs, forked operators,
tests that wait on purpose), `galera`, `replicas` or `pg_versions` (servers of their own). The
same selection by hand: `-m "not slow and not galera and not replicas and not pg_versions"`.
The README's plain `scripts/test` still runs everything.
"""

from __future__ import annotations

LEFT_OUT_BY_QUICK = ("slow", "galera", "replicas", "pg_versions")


def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true",
                     help=f"leave out the tests marked {', '.join(LEFT_OUT_BY_QUICK)} (the edit-test loop)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--quick"):
        left_out = [item for item in items if any(item.get_closest_marker(m) for m in LEFT_OUT_BY_QUICK)]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            gone = set(left_out)
            items[:] = [item for item in items if item not in gone]
    # Slow tests first: xdist hands tests out in this order, and a long test handed out last
    # keeps one worker busy after the others have finished.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

