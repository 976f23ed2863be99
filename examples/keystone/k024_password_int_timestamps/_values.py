"""What the simulator writes: Keystone's passwords belong to local users 1-10 (the rows the
simulator seeds there, whose unique columns get distinct values), and the timestamps span what every database's DateTime holds, before
1970 and far in the future included."""

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1)
FIRST = dt.datetime(1000, 1, 1)  # MySQL/MariaDB DATETIME's first day
LAST = dt.datetime(9999, 12, 31, 23, 59, 59)


def _seconds(rng) -> int:
    """Seconds since the epoch: most near today, some before 1970 or far ahead."""
    pick = rng.random()
    if pick < 0.15:
        return rng.randint(int((FIRST - EPOCH).total_seconds()), -1)
    if pick < 0.25:
        return rng.randint(int((dt.datetime(2100, 1, 1) - EPOCH).total_seconds()), int((LAST - EPOCH).total_seconds()))
    return rng.randint(1_400_000_000, 1_900_000_000)


def datetime(rng) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=_seconds(rng))


def micros(rng) -> int:
    return _seconds(rng) * 1_000_000 + rng.randint(0, 999_999)


def unique(rng) -> str:
    """A value for local_user's unique columns (user_id; name within a domain)."""
    return f"{rng.getrandbits(60):015x}"


VALUES = {
    "local_user.user_id": unique,
    "local_user.name": unique,
    "password.local_user_id": lambda rng: rng.randint(1, 10),
    "password.created_at": datetime,
    "password.expires_at": datetime,
    "password.created_at_int": micros,
    "password.expires_at_int": micros,
}
