"""Backfill progress as people and scripts read it: rows/s, time left, and why it waits."""

from __future__ import annotations

from . import parallel


def describe_speed(rate: float | None, eta: float | None, waiting: str | None) -> str:
    """'12,345 rows/s, ETA 1:02:03, waiting: <reason>', each part only where known."""
    parts = []
    if rate is not None:
        parts.append(f"{rate:,.0f} rows/s")
    if eta is not None:
        parts.append(f"ETA {clock_time(eta)}")
    if waiting:
        parts.append(f"waiting: {waiting}")
    return ", ".join(parts)


def clock_time(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def backfill_rows(checkpoint: dict) -> dict:
    """A table's backfill for `status --json`, from its checkpoint: rows done and total, the rows/s
    the last run recorded, the ETA at that rate, and the throttling reason it recorded (if any)."""
    return {"done": checkpoint.get("done", 0), "total": checkpoint.get("total") or 0,
            "complete": bool(checkpoint.get("complete")), "rows_per_second": checkpoint.get("rate"),
            "eta_seconds": parallel.eta(checkpoint) if checkpoint.get("total") is not None else None,
            "waiting": checkpoint.get("waiting"), "ranges": len(checkpoint.get("ranges", [])) or 1}
