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
    if not config.getoption("--quick"):
        return
    kept, left_out = [], []
    for item in items:
        (left_out if any(item.get_closest_marker(m) for m in LEFT_OUT_BY_QUICK) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept

