"""derive_column's trigger write overhead: crossfade's generated triggers vs the same law
hand-written, and vs no trigger at all.

    python benchmarks/derived.py [--accounts 20000] [--dialect sqlite postgresql mysql] [--reps 3]

Keystone 014's shape with integer keys: accounts(id, name, domain), and two source tables
local_logins and remote_logins(id, account_id -> accounts.id indexed, domain, login). The law:
accounts.domain = the least local_logins.domain of the account, else the least
remote_logins.domain, else NULL. Before each repetition every variant builds its tables afresh
(untimed): --accounts accounts, a local login for every even one and a remote login for every
odd one, the derived column filled.
Workloads, in this order on the same tables (one statement each, timed with its commit):
  insert local      a second local login for every account (each recomputes its account)
  update domain     UPDATE local_logins SET domain = ... (every row: its account follows)
  move              UPDATE remote_logins SET account_id = account_id + 1 (each leaves one account
                    and joins another: both recomputed)
  update unrelated  UPDATE local_logins SET login = ... (no trigger has work)
  update account    UPDATE accounts SET name = ... (the target's own trigger has no work)
  delete            DELETE FROM local_logins (every account falls back to its remote login, or NULL)
Variants:
  none       the same tables without any trigger: the floor (the derived column goes stale)
  hand       the same law hand-written the straightforward way per dialect (HAND below): a helper
             per account on PostgreSQL, BEFORE triggers with one UPDATE each on MariaDB (their
             guard, like crossfade's, survives a failed statement: HAND_GUARD_OFF), AFTER
             triggers with WHEN-free UPDATEs on SQLite
  crossfade  Runner(engine).expand + migrate of ops.derive_column
Each figure is the minimum over --reps repetitions (variants rotate within a repetition); the
ratios are crossfade / hand and crossfade / none within one run. After each hand and crossfade
measurement every account is checked against the law: a trigger that is fast but wrong stops the run.
"""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa
from _common import DIALECTS, autocommit, drop_tables, make_engine, markdown, series, timed

from crossfade import Change, ops
from crossfade.runner import Runner

TABLES = ("local_logins", "remote_logins", "accounts", "crossfade_state")
FUNCTIONS = ("hand_refresh_account", "hand_logins", "hand_accounts", "crossfade_local_logins_derive",
             "crossfade_remote_logins_derive", "crossfade_accounts_derive")
VARIANTS = ("none", "hand", "crossfade")
WORKLOADS = ("insert local", "update domain", "move", "update unrelated", "update account", "delete")

CHANGE = Change(ops.derive_column("accounts", sa.Column("domain", sa.String(16)), conflicts="resolve",
                                  sources=[("local_logins", "domain", "account_id"),
                                           ("remote_logins", "domain", "account_id")]), id="bench_derived")


def metadata(with_domain: bool) -> sa.MetaData:
    md = sa.MetaData()
    sa.Table("accounts", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("name", sa.String(20)), *([sa.Column("domain", sa.String(16))] if with_domain else []))
    for name in ("local_logins", "remote_logins"):
        sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), index=True),
                 sa.Column("domain", sa.String(16)), sa.Column("login", sa.String(20)))
    return md


def mod(dialect: str, value: str, n: int) -> str:
    return f"{value} % {n}" if dialect == "sqlite" else f"mod({value}, {n})"


def derived_sql(dialect: str, account: str) -> str:
    return (f"coalesce((SELECT min(domain) FROM local_logins WHERE account_id = {account}), "
            f"(SELECT min(domain) FROM remote_logins WHERE account_id = {account}))")


# --- the law hand-written -------------------------------------------------------------------------

def hand_postgresql() -> list[str]:
    derived = derived_sql("postgresql", "a")
    statements = [
        f"""CREATE OR REPLACE FUNCTION hand_refresh_account(a integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v varchar(16);
BEGIN
  IF a IS NULL THEN RETURN; END IF;
  PERFORM 1 FROM accounts WHERE id = a FOR NO KEY UPDATE;
  v := {derived};
  PERFORM set_config('hand.guard', 'on', true);
  UPDATE accounts SET domain = v WHERE id = a AND domain IS DISTINCT FROM v;
  PERFORM set_config('hand.guard', '', true);
END $$""",
        """CREATE OR REPLACE FUNCTION hand_logins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'DELETE' THEN PERFORM hand_refresh_account(NEW.account_id); END IF;
  IF TG_OP = 'DELETE' THEN
    PERFORM hand_refresh_account(OLD.account_id);
  ELSIF TG_OP = 'UPDATE' THEN
    IF OLD.account_id IS DISTINCT FROM NEW.account_id THEN PERFORM hand_refresh_account(OLD.account_id); END IF;
  END IF;
  RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION hand_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('hand.guard', true), '') = 'on' THEN RETURN NEW; END IF;
  NEW.domain := {derived_sql("postgresql", "NEW.id")};
  RETURN NEW;
END $$""",
        ("CREATE TRIGGER hand_accounts BEFORE INSERT OR UPDATE OF id, domain ON accounts "
        "FOR EACH ROW EXECUTE FUNCTION hand_accounts()"),
    ]
    for table in ("local_logins", "remote_logins"):
        statements.append(f"CREATE TRIGGER hand_{table} AFTER INSERT OR DELETE OR UPDATE OF account_id, domain "
                          f"ON {table} FOR EACH ROW EXECUTE FUNCTION hand_logins()")
    return statements


def _maria_value(table: str, account: str, old: bool, new: bool) -> str:
    """The derived value for `account` as a BEFORE trigger on `table` sees it: its OLD row left
    out, its NEW value joined in."""
    parts = []
    for source in ("local_logins", "remote_logins"):
        where = f"account_id = {account}" + (" AND id <> OLD.id" if old and source == table else "")
        found = f"(SELECT min(domain) FROM {source} WHERE {where} LOCK IN SHARE MODE)"
        if new and source == table:
            found = (f"CASE WHEN NEW.account_id <=> {account} AND NEW.domain IS NOT NULL "
                     f"THEN LEAST(NEW.domain, COALESCE({found}, NEW.domain)) ELSE {found} END")
        parts.append(found)
    return f"COALESCE({', '.join(parts)})"


# The guard a failed statement cannot leave set: cleared by a handler, and stamped with the
# statement's start (a deadlock rolls back without running the handler). A bare flag stays set
# after, say, a lock wait timeout in the trigger's UPDATE, and every later write of accounts in
# that session skips the trigger: a forged domain stays (measured on MariaDB 10.11).
HAND_GUARD_OFF = "(@hand_guard IS NULL OR @hand_guard <> NOW(6) + 0)"


def hand_mysql() -> list[str]:
    def guarded(*statements: str) -> str:
        return ("BEGIN DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SET @hand_guard = NULL; RESIGNAL; END; "
                "SET @hand_guard = NOW(6) + 0; " + " ".join(statements) + " SET @hand_guard = NULL; END;")

    statements = []
    for t in ("local_logins", "remote_logins"):
        def refresh(account, old, new, t=t):
            return f"UPDATE accounts SET domain = {_maria_value(t, account, old, new)} WHERE id = {account};"
        moved = "NOT (OLD.account_id <=> NEW.account_id)"
        statements += [
            (f"CREATE TRIGGER hand_{t}_ins BEFORE INSERT ON {t} FOR EACH ROW BEGIN "
            f"{guarded(refresh('NEW.account_id', False, True))} END"),
            (f"CREATE TRIGGER hand_{t}_upd BEFORE UPDATE ON {t} FOR EACH ROW BEGIN "
            f"IF {moved} OR NOT (OLD.domain <=> NEW.domain) THEN "
            f"{guarded(refresh('NEW.account_id', True, True), f'IF {moved} THEN', refresh('OLD.account_id', True, False), 'END IF;')} "
            "END IF; END"),
            (f"CREATE TRIGGER hand_{t}_del BEFORE DELETE ON {t} FOR EACH ROW BEGIN "
            f"{guarded(refresh('OLD.account_id', True, False))} END"),
        ]
    value = _maria_value("accounts", "NEW.id", False, False)
    statements += [
        (f"CREATE TRIGGER hand_accounts_ins BEFORE INSERT ON accounts FOR EACH ROW BEGIN "
        f"IF {HAND_GUARD_OFF} THEN SET NEW.domain = {value}; END IF; END"),
        (f"CREATE TRIGGER hand_accounts_upd BEFORE UPDATE ON accounts FOR EACH ROW BEGIN "
        f"IF {HAND_GUARD_OFF} AND (NOT (OLD.id <=> NEW.id) OR NOT (OLD.domain <=> NEW.domain)) THEN "
        f"SET NEW.domain = {value}; END IF; END"),
    ]
    return statements


def hand_sqlite() -> list[str]:
    def refresh(account: str) -> str:
        value = derived_sql("sqlite", account)
        return f"UPDATE accounts SET domain = {value} WHERE id = {account} AND domain IS NOT {value};"

    statements = []
    for t in ("local_logins", "remote_logins"):
        statements += [
            f"CREATE TRIGGER hand_{t}_ins AFTER INSERT ON {t} BEGIN {refresh('NEW.account_id')} END",
            (f"CREATE TRIGGER hand_{t}_upd AFTER UPDATE OF account_id, domain ON {t} BEGIN "
            f"{refresh('NEW.account_id')} {refresh('OLD.account_id')} END"),
            f"CREATE TRIGGER hand_{t}_del AFTER DELETE ON {t} BEGIN {refresh('OLD.account_id')} END",
        ]
    value = derived_sql("sqlite", "NEW.id")
    for event in ("INSERT", "UPDATE OF id, domain"):
        suffix = "ins" if event == "INSERT" else "upd"
        statements.append(f"CREATE TRIGGER hand_accounts_{suffix} AFTER {event} ON accounts "
                          f"WHEN NEW.domain IS NOT {value} BEGIN "
                          f"UPDATE accounts SET domain = {value} WHERE id = NEW.id; END")
    return statements


HAND = {"postgresql": hand_postgresql, "mysql": hand_mysql, "sqlite": hand_sqlite}


# --- one run ---------------------------------------------------------------------------------

def setup(engine: sa.Engine, variant: str, accounts: int) -> None:
    dialect = engine.dialect.name
    drop_tables(engine, TABLES, FUNCTIONS)
    metadata(with_domain=variant != "crossfade").create_all(engine)
    with autocommit(engine) as conn:
        conn.exec_driver_sql(f"INSERT INTO accounts (id, name) SELECT i, 'a' FROM {series(dialect, accounts)}")
        for table, parity in (("local_logins", 0), ("remote_logins", 1)):
            conn.exec_driver_sql(f"INSERT INTO {table} (account_id, domain, login) SELECT id, "
                                 f"CASE WHEN {mod(dialect, 'id', 3)} = 0 THEN 'default' ELSE 'ldap' END, 'x' "
                                 f"FROM accounts WHERE {mod(dialect, 'id', 2)} = {parity}")
        if variant != "crossfade":
            conn.exec_driver_sql(f"UPDATE accounts SET domain = {derived_sql(dialect, 'accounts.id')}")
        if variant == "hand":
            for statement in HAND[dialect]():
                conn.exec_driver_sql(statement)
    if variant == "crossfade":
        runner = Runner(engine)
        runner.expand(CHANGE)
        runner.migrate(CHANGE)
    with autocommit(engine) as conn:
        conn.exec_driver_sql("ANALYZE" if dialect != "mysql" else "ANALYZE TABLE accounts, local_logins, remote_logins")


def workload_sql(dialect: str, workload: str, accounts: int) -> str:
    return {
        # From a series, not FROM accounts: MariaDB's triggers could not write a table the
        # statement reads (error 1442; crossfade's preflight warns about it).
        "insert local": (f"INSERT INTO local_logins (account_id, domain, login) SELECT i, 'heat', 'y' "
                         f"FROM {series(dialect, accounts)}"),
        "update domain": "UPDATE local_logins SET domain = CASE WHEN domain = 'heat' THEN 'service' ELSE 'heat' END",
        "move": f"UPDATE remote_logins SET account_id = account_id + 1 WHERE account_id < {accounts}",
        "update unrelated": "UPDATE local_logins SET login = 'z'",
        "update account": "UPDATE accounts SET name = 'b'",
        "delete": "DELETE FROM local_logins",
    }[workload]


def broken(engine: sa.Engine) -> int:
    distinct = "IS NOT" if engine.dialect.name == "sqlite" else "IS DISTINCT FROM"
    if engine.dialect.name == "mysql":
        condition = f"NOT (domain <=> {derived_sql('mysql', 'accounts.id')})"
    else:
        condition = f"domain {distinct} {derived_sql(engine.dialect.name, 'accounts.id')}"
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM accounts WHERE {condition}").scalar()


def run_dialect(dialect: str, accounts: int, reps: int, log) -> dict:
    engine = make_engine(dialect)
    best: dict[tuple[str, str], float] = {}
    for rep in range(reps):
        order = VARIANTS[rep % 3:] + VARIANTS[:rep % 3]
        for variant in order:
            setup(engine, variant, accounts)
            for workload in WORKLOADS:
                seconds = timed(engine, workload_sql(dialect, workload, accounts))
                key = (variant, workload)
                best[key] = min(best.get(key, seconds), seconds)
                if variant != "none" and broken(engine):
                    raise SystemExit(f"{dialect} {variant} {workload}: {broken(engine)} account(s) break the law")
            log(f"{dialect} rep {rep + 1} {variant}: " + ", ".join(f"{w} {best[variant, w]:.3f}s" for w in WORKLOADS))
    drop_tables(engine, TABLES, FUNCTIONS)
    engine.dispose()
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for dialect in args.dialect:
        best = run_dialect(dialect, args.accounts, args.reps, lambda line: print(line, file=sys.stderr))
        for workload in WORKLOADS:
            none, hand, cf = (best[v, workload] for v in VARIANTS)
            rows.append([dialect, workload, f"{none * 1000:.0f}", f"{hand * 1000:.0f}", f"{cf * 1000:.0f}",
                         f"{cf / hand:.2f}", f"{cf / none:.2f}"])
    print(f"derive_column trigger overhead, {args.accounts} accounts, min over {args.reps} runs (ms)")
    print(markdown(["dialect", "workload", "none", "hand", "crossfade", "crossfade/hand", "crossfade/none"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
