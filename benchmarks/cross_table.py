"""Cross-table trigger write overhead: crossfade's move_column and split_table triggers vs no
trigger vs the same sync law hand-written.

    python benchmarks/cross_table.py [--rows 200000] [--dialect sqlite postgresql mysql] [--reps 3]
                                     [--scenario move split]

Scenarios (release N's tables, then expand; --rows users in all, half of them there before expand):
  move   move_column("users", "org_name", to="orgs", via="org_id", new="name"), many-to-one:
         orgs(id, title, name) with 1,000 orgs; users(id, login, org_id -> orgs.id indexed, org_name),
         each org's users spread evenly over the keys.
  split  split_table("users", "profiles", ["bio", "theme"]): users(id, login, bio, theme), and
         profiles(id -> users.id, bio, theme).
Workloads, run in this order on the same tables (one statement each, timed with its commit):
  insert            release N: INSERT ... SELECT of the other half of the users, values included
  update unrelated  release N: UPDATE users SET login = ... (every user; a column no trigger syncs)
  update synced     release N: move: UPDATE users SET org_name = ... WHERE org_id <= 100 (every user of
                    those orgs, as MariaDB needs: a trigger there cannot reach a row's siblings);
                    split: UPDATE users SET bio = ... (every user)
  update target     release N+1: move: UPDATE orgs SET name = ... (every org; each reaches its users);
                    split: UPDATE profiles SET theme = ... (every row)
Variants:
  none       the expanded schema without any trigger: the floor (it leaves the other table stale)
  hand       the same sync law written the most straightforward way per dialect (HAND_MOVE,
             HAND_SPLIT below: WHEN clauses, a guard around each write of the other table)
  crossfade  Runner(engine).expand(change) on release N's tables
The rows there before expand get their moved values as a finished backfill leaves them, untimed:
for none and hand from one set-based statement; for crossfade by Runner.migrate (split), or (move)
by the same statement run through crossfade's triggers, as release N+1 would write the names
(the triggers find no user to change). Not migrate there: on MariaDB its batches of the move hold
~50 users (each runs UPDATE orgs ... WHERE id IN (SELECT ... FROM users ...) as a scan of orgs
with a dependent subquery), 7 s for 10,000 users, too long to repeat here.
Per repetition every variant builds its tables afresh (untimed: load, expand, backfill, statistics)
and runs the four workloads on them in turn (statistics refreshed in between, untimed); the
variants' order rotates each repetition and the figures are medians, their ratios within one run.
After each hand and crossfade measurement the tables are checked (both sides agree, and hold the
values the statement wrote): a trigger that is fast but wrong stops the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import ClassVar

import sqlalchemy as sa
from _common import (
    DIALECTS,
    autocommit,
    distinct,
    drop_tables,
    label,
    maintain,
    make_engine,
    markdown,
    median,
    series,
    timed,
)

from crossfade import Change, ops
from crossfade.runner import Runner

VARIANTS = ("none", "hand", "crossfade")
WORKLOADS = ("insert", "update unrelated", "update synced", "update target")
TARGET = 1.05  # DESIGN section 9: generated trigger vs the same logic hand-written
ORGS = 1_000
SIBLING_ORGS = 100  # the synced UPDATE of `move` rewrites every user of orgs 1..100
SOURCE = "bench_users_src"
TABLES = ("profiles", "users", "orgs", "crossfade_state")  # dropped in this order (foreign keys)
FUNCTIONS = ("crossfade_users_move", "crossfade_orgs_move", "crossfade_users_link", "crossfade_profiles_link",
             "bench_hand_users_pull", "bench_hand_users_push", "bench_hand_orgs_pull", "bench_hand_orgs_push",
             "bench_hand_orgs_clear", "bench_hand_users_link", "bench_hand_profiles_link")


# --- SQL that differs per dialect (concat, label, distinct, series: _common) -------------------

def org_of(dialect: str, i: str) -> str:
    """User i's org: consecutive users belong to different orgs, so an org's users are spread out.
    (No `%` on PostgreSQL: psycopg reads it as a placeholder.)"""
    remainder = f"({i} - 1) % {ORGS}" if dialect == "sqlite" else f"mod({i} - 1, {ORGS})"
    return f"({remainder} + 1)"


# --- the source rows every load and bulk INSERT copies ------------------------------------------

def make_source(engine: sa.Engine, rows: int) -> None:
    """bench_users_src(id, login, org_id, org_name, bio, theme), built server-side once per size."""
    dialect = engine.dialect.name
    with autocommit(engine) as conn:
        if sa.inspect(conn).has_table(SOURCE) and conn.exec_driver_sql(f"SELECT count(*) FROM {SOURCE}").scalar() == rows:
            return
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {SOURCE}")
        conn.exec_driver_sql(f"CREATE TABLE {SOURCE} (id INTEGER PRIMARY KEY, login VARCHAR(40), org_id INTEGER, "
                             "org_name VARCHAR(40), bio VARCHAR(200), theme VARCHAR(20))")
        conn.exec_driver_sql(
            f"INSERT INTO {SOURCE} SELECT i, {label(dialect, 'user-', 'i')}, {org_of(dialect, 'i')}, "
            f"{label(dialect, 'org-', org_of(dialect, 'i'))}, {label(dialect, 'bio-', 'i')}, "
            f"{label(dialect, 'theme-', 'i')} FROM {series(dialect, rows)}")


# --- hand-written triggers: the same law, the most straightforward way per dialect --------------
# Each side's write to the other table runs under a guard (a transaction-local setting, a session
# variable on MariaDB) so the other side's trigger does not write back; SQLite has no variables,
# so there every write touches only rows that differ. Reads of the other side's values lock, as
# crossfade's do, so a concurrent writer of those rows is waited for.

# MariaDB's guard is crossfade's: the session variable holds the statement's start time, so one
# left set by a deadlock (which skips the handler) names a statement that is over. Here it is set
# only around the write of the other table, not around the whole trigger.
MARIA_UNGUARDED = "(@bench_guard IS NULL OR @bench_guard <> NOW(6) + 0)"


def maria_guarded(*statements: str) -> str:
    """A block writing the other table with its triggers off; a failure clears the guard."""
    body = "\n".join(f"        {s}" for s in statements)
    return ("      BEGIN\n"
            "        DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN SET @bench_guard = NULL; RESIGNAL; END;\n"
            "        SET @bench_guard = NOW(6) + 0;\n"
            f"{body}\n"
            "        SET @bench_guard = NULL;\n"
            "      END;")


PUSH_TO_ORG = "UPDATE orgs SET name = NEW.org_name WHERE id = NEW.org_id AND NOT (BINARY name <=> BINARY NEW.org_name);"
PUSH_TO_USERS = "UPDATE users SET org_name = NEW.name WHERE org_id = NEW.id AND NOT (BINARY org_name <=> BINARY NEW.name);"
CLEAR_USERS = "UPDATE users SET org_name = NULL WHERE org_id = OLD.id AND org_name IS NOT NULL;"
COPY_TO_USER = "UPDATE users SET bio = NEW.bio, theme = NEW.theme WHERE id = NEW.id;"

HAND_MOVE = {
    # BEFORE triggers fill the written row (WHEN it needs filling); AFTER triggers push to the other
    # table, and a user's new value reaches its siblings when, and only when, the org took it.
    "postgresql": [
        """CREATE FUNCTION bench_hand_users_pull() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.org_name := coalesce((SELECT name FROM orgs WHERE id = NEW.org_id FOR SHARE),
    (SELECT org_name FROM users WHERE org_id = NEW.org_id AND id <> NEW.id AND org_name IS NOT NULL
     ORDER BY id LIMIT 1 FOR SHARE), NEW.org_name);
  RETURN NEW;
END $$""",
        """CREATE FUNCTION bench_hand_users_push() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('bench.guard', true), '') = 'on' THEN RETURN NULL; END IF;
  PERFORM set_config('bench.guard', 'on', true);
  UPDATE orgs SET name = NEW.org_name WHERE id = NEW.org_id AND name IS DISTINCT FROM NEW.org_name;
  IF FOUND THEN
    UPDATE users SET org_name = NEW.org_name
      WHERE org_id = NEW.org_id AND id <> NEW.id AND org_name IS DISTINCT FROM NEW.org_name;
  END IF;
  PERFORM set_config('bench.guard', '', true);
  RETURN NULL;
END $$""",
        """CREATE FUNCTION bench_hand_orgs_pull() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.name := (SELECT org_name FROM users WHERE org_id = NEW.id AND org_name IS NOT NULL ORDER BY id LIMIT 1 FOR SHARE);
  RETURN NEW;
END $$""",
        """CREATE FUNCTION bench_hand_orgs_push() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('bench.guard', true), '') = 'on' THEN RETURN NULL; END IF;
  PERFORM set_config('bench.guard', 'on', true);
  IF TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id THEN
    UPDATE users SET org_name = NULL WHERE org_id = OLD.id AND org_name IS NOT NULL;
  END IF;
  UPDATE users SET org_name = NEW.name WHERE org_id = NEW.id AND org_name IS DISTINCT FROM NEW.name;
  PERFORM set_config('bench.guard', '', true);
  RETURN NULL;
END $$""",
        """CREATE FUNCTION bench_hand_orgs_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('bench.guard', true), '') <> 'on' THEN
    PERFORM set_config('bench.guard', 'on', true);
    UPDATE users SET org_name = NULL WHERE org_id = OLD.id AND org_name IS NOT NULL;
    PERFORM set_config('bench.guard', '', true);
  END IF;
  RETURN OLD;
END $$""",
        """CREATE TRIGGER bench_hand_users_pull_insert BEFORE INSERT ON users FOR EACH ROW
WHEN (NEW.org_name IS NULL) EXECUTE FUNCTION bench_hand_users_pull()""",
        """CREATE TRIGGER bench_hand_users_pull_update BEFORE UPDATE OF org_id ON users FOR EACH ROW
WHEN (NEW.org_id IS DISTINCT FROM OLD.org_id AND NEW.org_name IS NOT DISTINCT FROM OLD.org_name)
EXECUTE FUNCTION bench_hand_users_pull()""",
        """CREATE TRIGGER bench_hand_users_push_insert AFTER INSERT ON users FOR EACH ROW
WHEN (NEW.org_name IS NOT NULL) EXECUTE FUNCTION bench_hand_users_push()""",
        """CREATE TRIGGER bench_hand_users_push_update AFTER UPDATE OF org_name, org_id ON users FOR EACH ROW
WHEN (NEW.org_name IS DISTINCT FROM OLD.org_name OR NEW.org_id IS DISTINCT FROM OLD.org_id)
EXECUTE FUNCTION bench_hand_users_push()""",
        """CREATE TRIGGER bench_hand_orgs_pull_insert BEFORE INSERT ON orgs FOR EACH ROW
WHEN (NEW.name IS NULL) EXECUTE FUNCTION bench_hand_orgs_pull()""",
        """CREATE TRIGGER bench_hand_orgs_pull_update BEFORE UPDATE OF id ON orgs FOR EACH ROW
WHEN (NEW.id IS DISTINCT FROM OLD.id AND NEW.name IS NULL AND OLD.name IS NULL)
EXECUTE FUNCTION bench_hand_orgs_pull()""",
        """CREATE TRIGGER bench_hand_orgs_push_insert AFTER INSERT ON orgs FOR EACH ROW
WHEN (NEW.name IS NOT NULL) EXECUTE FUNCTION bench_hand_orgs_push()""",
        """CREATE TRIGGER bench_hand_orgs_push_update AFTER UPDATE OF name, id ON orgs FOR EACH ROW
WHEN (NEW.name IS DISTINCT FROM OLD.name OR NEW.id IS DISTINCT FROM OLD.id)
EXECUTE FUNCTION bench_hand_orgs_push()""",
        # BEFORE: a foreign key's ON DELETE action runs first among the AFTER triggers.
        "CREATE TRIGGER bench_hand_orgs_clear BEFORE DELETE ON orgs FOR EACH ROW EXECUTE FUNCTION bench_hand_orgs_clear()",
    ],
    # BEFORE triggers that SET NEW and write the other table.
    "mysql": [
        f"""CREATE TRIGGER bench_hand_users_ins BEFORE INSERT ON users FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} THEN
    IF NEW.org_name IS NULL THEN
      SET NEW.org_name = COALESCE((SELECT name FROM orgs WHERE id = NEW.org_id LOCK IN SHARE MODE),
        (SELECT org_name FROM users WHERE org_id = NEW.org_id AND org_name IS NOT NULL ORDER BY id LIMIT 1
         LOCK IN SHARE MODE));
    END IF;
    IF NEW.org_name IS NOT NULL THEN
{maria_guarded(PUSH_TO_ORG)}
    END IF;
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_users_upd BEFORE UPDATE ON users FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} THEN
    IF NOT (NEW.org_id <=> OLD.org_id) AND (BINARY NEW.org_name <=> BINARY OLD.org_name) THEN
      SET NEW.org_name = COALESCE((SELECT name FROM orgs WHERE id = NEW.org_id LOCK IN SHARE MODE),
        (SELECT org_name FROM users WHERE org_id = NEW.org_id AND id <> NEW.id AND org_name IS NOT NULL
         ORDER BY id LIMIT 1 LOCK IN SHARE MODE), NEW.org_name);
    END IF;
    IF NOT (BINARY NEW.org_name <=> BINARY OLD.org_name) OR NOT (NEW.org_id <=> OLD.org_id) THEN
{maria_guarded(PUSH_TO_ORG)}
    END IF;
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_orgs_ins BEFORE INSERT ON orgs FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} THEN
    IF NEW.name IS NULL THEN
      SET NEW.name = (SELECT org_name FROM users WHERE org_id = NEW.id AND org_name IS NOT NULL ORDER BY id LIMIT 1
                      LOCK IN SHARE MODE);
    END IF;
    IF NEW.name IS NOT NULL THEN
{maria_guarded(PUSH_TO_USERS)}
    END IF;
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_orgs_upd BEFORE UPDATE ON orgs FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} THEN
    IF NOT (NEW.id <=> OLD.id) AND NEW.name IS NULL AND OLD.name IS NULL THEN
      SET NEW.name = (SELECT org_name FROM users WHERE org_id = NEW.id AND org_name IS NOT NULL ORDER BY id LIMIT 1
                      LOCK IN SHARE MODE);
    END IF;
    IF NOT (BINARY NEW.name <=> BINARY OLD.name) OR NOT (NEW.id <=> OLD.id) THEN
{maria_guarded("IF NOT (NEW.id <=> OLD.id) THEN " + CLEAR_USERS + " END IF;", PUSH_TO_USERS)}
    END IF;
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_orgs_del BEFORE DELETE ON orgs FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} THEN
{maria_guarded(CLEAR_USERS)}
  END IF;
END""",
    ],
    # One small AFTER trigger per case, its WHEN saying when it runs. A user's write reaches the org,
    # and the org's trigger passes a change on to the other users.
    "sqlite": [
        """CREATE TRIGGER bench_hand_users_pull_insert AFTER INSERT ON users FOR EACH ROW
WHEN NEW.org_name IS NULL AND NEW.org_id IS NOT NULL
BEGIN
  UPDATE users SET org_name = coalesce((SELECT name FROM orgs WHERE id = NEW.org_id),
    (SELECT org_name FROM users WHERE org_id = NEW.org_id AND id <> NEW.id AND org_name IS NOT NULL ORDER BY id LIMIT 1))
  WHERE id = NEW.id;
END""",
        """CREATE TRIGGER bench_hand_users_push_insert AFTER INSERT ON users FOR EACH ROW
WHEN NEW.org_name IS NOT NULL
BEGIN
  UPDATE orgs SET name = NEW.org_name WHERE id = NEW.org_id AND name IS NOT NEW.org_name;
END""",
        """CREATE TRIGGER bench_hand_users_push_update AFTER UPDATE OF org_name ON users FOR EACH ROW
WHEN NEW.org_name IS NOT OLD.org_name
BEGIN
  UPDATE orgs SET name = NEW.org_name WHERE id = NEW.org_id AND name IS NOT NEW.org_name;
END""",
        """CREATE TRIGGER bench_hand_users_rekey AFTER UPDATE OF org_id ON users FOR EACH ROW
WHEN NEW.org_id IS NOT OLD.org_id AND NEW.org_name IS OLD.org_name
BEGIN
  UPDATE users SET org_name = coalesce((SELECT name FROM orgs WHERE id = NEW.org_id),
    (SELECT org_name FROM users WHERE org_id = NEW.org_id AND id <> NEW.id AND org_name IS NOT NULL ORDER BY id LIMIT 1),
    org_name) WHERE id = NEW.id;
  UPDATE orgs SET name = NEW.org_name WHERE id = NEW.org_id AND name IS NULL AND NEW.org_name IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM users WHERE org_id = NEW.org_id AND id <> NEW.id AND org_name IS NOT NULL);
  UPDATE users SET org_name = NULL WHERE id = NEW.id AND NEW.org_id IS NULL
    AND NOT EXISTS (SELECT 1 FROM orgs WHERE id = OLD.org_id);
END""",
        """CREATE TRIGGER bench_hand_orgs_pull_insert AFTER INSERT ON orgs FOR EACH ROW
WHEN NEW.name IS NULL
BEGIN
  UPDATE orgs SET name = (SELECT org_name FROM users WHERE org_id = NEW.id AND org_name IS NOT NULL ORDER BY id LIMIT 1)
  WHERE id = NEW.id;
END""",
        """CREATE TRIGGER bench_hand_orgs_push_insert AFTER INSERT ON orgs FOR EACH ROW
WHEN NEW.name IS NOT NULL
BEGIN
  UPDATE users SET org_name = NEW.name WHERE org_id = NEW.id AND org_name IS NOT NEW.name;
END""",
        """CREATE TRIGGER bench_hand_orgs_push_update AFTER UPDATE OF name ON orgs FOR EACH ROW
WHEN NEW.name IS NOT OLD.name
BEGIN
  UPDATE users SET org_name = NEW.name WHERE org_id = NEW.id AND org_name IS NOT NEW.name;
END""",
        """CREATE TRIGGER bench_hand_orgs_rekey AFTER UPDATE OF id ON orgs FOR EACH ROW
WHEN NEW.id IS NOT OLD.id
BEGIN
  UPDATE users SET org_name = NULL WHERE org_id = OLD.id AND org_name IS NOT NULL;
  UPDATE orgs SET name = (SELECT org_name FROM users WHERE org_id = NEW.id AND org_name IS NOT NULL ORDER BY id LIMIT 1)
  WHERE id = NEW.id AND NEW.name IS NULL;
  UPDATE users SET org_name = NEW.name WHERE org_id = NEW.id AND org_name IS NOT NEW.name AND NEW.name IS NOT NULL;
END""",
        """CREATE TRIGGER bench_hand_orgs_delete AFTER DELETE ON orgs FOR EACH ROW
BEGIN
  UPDATE users SET org_name = NULL WHERE org_id = OLD.id AND org_name IS NOT NULL;
END""",
    ],
}

HAND_SPLIT = {
    # AFTER triggers on both tables; a deleted user's profile goes by the foreign key's cascade.
    "postgresql": [
        """CREATE FUNCTION bench_hand_users_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('bench.guard', true), '') = 'on' THEN RETURN NULL; END IF;
  PERFORM set_config('bench.guard', 'on', true);
  IF TG_OP = 'INSERT' THEN
    INSERT INTO profiles (id, bio, theme) VALUES (NEW.id, NEW.bio, NEW.theme);
  ELSE
    UPDATE profiles SET bio = NEW.bio, theme = NEW.theme WHERE id = NEW.id;
    IF NOT FOUND AND (NEW.bio IS NOT NULL OR NEW.theme IS NOT NULL) THEN
      INSERT INTO profiles (id, bio, theme) VALUES (NEW.id, NEW.bio, NEW.theme);
    END IF;
  END IF;
  PERFORM set_config('bench.guard', '', true);
  RETURN NULL;
END $$""",
        """CREATE FUNCTION bench_hand_profiles_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('bench.guard', true), '') = 'on' THEN RETURN NULL; END IF;
  PERFORM set_config('bench.guard', 'on', true);
  IF TG_OP = 'DELETE' THEN
    UPDATE users SET bio = NULL, theme = NULL WHERE id = OLD.id;
  ELSE
    UPDATE users SET bio = NEW.bio, theme = NEW.theme WHERE id = NEW.id;
  END IF;
  PERFORM set_config('bench.guard', '', true);
  RETURN NULL;
END $$""",
        """CREATE TRIGGER bench_hand_users_insert AFTER INSERT ON users FOR EACH ROW
WHEN (NEW.bio IS NOT NULL OR NEW.theme IS NOT NULL) EXECUTE FUNCTION bench_hand_users_link()""",
        """CREATE TRIGGER bench_hand_users_update AFTER UPDATE OF id, bio, theme ON users FOR EACH ROW
WHEN ((NEW.id, NEW.bio, NEW.theme) IS DISTINCT FROM (OLD.id, OLD.bio, OLD.theme))
EXECUTE FUNCTION bench_hand_users_link()""",
        """CREATE TRIGGER bench_hand_profiles_insert AFTER INSERT ON profiles FOR EACH ROW
EXECUTE FUNCTION bench_hand_profiles_link()""",
        """CREATE TRIGGER bench_hand_profiles_update AFTER UPDATE OF bio, theme ON profiles FOR EACH ROW
WHEN ((NEW.bio, NEW.theme) IS DISTINCT FROM (OLD.bio, OLD.theme)) EXECUTE FUNCTION bench_hand_profiles_link()""",
        """CREATE TRIGGER bench_hand_profiles_delete AFTER DELETE ON profiles FOR EACH ROW
EXECUTE FUNCTION bench_hand_profiles_link()""",
    ],
    "mysql": [
        f"""CREATE TRIGGER bench_hand_users_ins AFTER INSERT ON users FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} AND (NEW.bio IS NOT NULL OR NEW.theme IS NOT NULL) THEN
{maria_guarded("INSERT INTO profiles (id, bio, theme) VALUES (NEW.id, NEW.bio, NEW.theme);")}
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_users_upd AFTER UPDATE ON users FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} AND (NOT (NEW.id <=> OLD.id) OR NOT (BINARY NEW.bio <=> BINARY OLD.bio)
                            OR NOT (BINARY NEW.theme <=> BINARY OLD.theme)) THEN
{maria_guarded("IF NEW.bio IS NOT NULL OR NEW.theme IS NOT NULL THEN",
               "  INSERT INTO profiles (id, bio, theme) VALUES (NEW.id, NEW.bio, NEW.theme)",
               "    ON DUPLICATE KEY UPDATE bio = VALUES(bio), theme = VALUES(theme);",
               "ELSE",
               "  UPDATE profiles SET bio = NULL, theme = NULL WHERE id = NEW.id;",
               "END IF;")}
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_profiles_ins AFTER INSERT ON profiles FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} THEN
{maria_guarded(COPY_TO_USER)}
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_profiles_upd AFTER UPDATE ON profiles FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} AND (NOT (BINARY NEW.bio <=> BINARY OLD.bio) OR NOT (BINARY NEW.theme <=> BINARY OLD.theme)) THEN
{maria_guarded(COPY_TO_USER)}
  END IF;
END""",
        f"""CREATE TRIGGER bench_hand_profiles_del AFTER DELETE ON profiles FOR EACH ROW
BEGIN
  IF {MARIA_UNGUARDED} THEN
{maria_guarded("UPDATE users SET bio = NULL, theme = NULL WHERE id = OLD.id;")}
  END IF;
END""",
    ],
    # Foreign keys are off by default here, so a deleted user's profile goes by trigger.
    "sqlite": [
        """CREATE TRIGGER bench_hand_users_insert AFTER INSERT ON users FOR EACH ROW
WHEN NEW.bio IS NOT NULL OR NEW.theme IS NOT NULL
BEGIN
  INSERT INTO profiles (id, bio, theme) VALUES (NEW.id, NEW.bio, NEW.theme)
    ON CONFLICT (id) DO UPDATE SET bio = excluded.bio, theme = excluded.theme
    WHERE bio IS NOT excluded.bio OR theme IS NOT excluded.theme;
END""",
        """CREATE TRIGGER bench_hand_users_update AFTER UPDATE OF bio, theme ON users FOR EACH ROW
WHEN NEW.bio IS NOT OLD.bio OR NEW.theme IS NOT OLD.theme
BEGIN
  INSERT INTO profiles (id, bio, theme) SELECT NEW.id, NEW.bio, NEW.theme WHERE NEW.bio IS NOT NULL OR NEW.theme IS NOT NULL
    ON CONFLICT (id) DO UPDATE SET bio = excluded.bio, theme = excluded.theme
    WHERE bio IS NOT excluded.bio OR theme IS NOT excluded.theme;
  UPDATE profiles SET bio = NULL, theme = NULL WHERE id = NEW.id AND NEW.bio IS NULL AND NEW.theme IS NULL;
END""",
        """CREATE TRIGGER bench_hand_users_rekey AFTER UPDATE OF id ON users FOR EACH ROW WHEN NEW.id IS NOT OLD.id
BEGIN
  UPDATE profiles SET id = NEW.id WHERE id = OLD.id;
END""",
        """CREATE TRIGGER bench_hand_users_delete AFTER DELETE ON users FOR EACH ROW
BEGIN
  DELETE FROM profiles WHERE id = OLD.id;
END""",
        """CREATE TRIGGER bench_hand_profiles_insert AFTER INSERT ON profiles FOR EACH ROW
BEGIN
  UPDATE users SET bio = NEW.bio, theme = NEW.theme WHERE id = NEW.id AND (bio IS NOT NEW.bio OR theme IS NOT NEW.theme);
END""",
        """CREATE TRIGGER bench_hand_profiles_update AFTER UPDATE OF bio, theme ON profiles FOR EACH ROW
WHEN NEW.bio IS NOT OLD.bio OR NEW.theme IS NOT OLD.theme
BEGIN
  UPDATE users SET bio = NEW.bio, theme = NEW.theme WHERE id = NEW.id AND (bio IS NOT NEW.bio OR theme IS NOT NEW.theme);
END""",
        """CREATE TRIGGER bench_hand_profiles_delete AFTER DELETE ON profiles FOR EACH ROW
BEGIN
  UPDATE users SET bio = NULL, theme = NULL WHERE id = OLD.id AND (bio IS NOT NULL OR theme IS NOT NULL);
END""",
    ],
}


# --- the scenarios ------------------------------------------------------------------------------

class Scenario:
    """One cross-table change: its tables, how each variant reaches the expanded schema, the
    workloads' statements, and what the tables must hold after each."""

    name = ""
    hand: ClassVar[dict[str, list[str]]]  # the hand-written triggers, per dialect
    columns = ""  # the source columns the users table loads

    def change(self) -> Change:
        raise NotImplementedError

    def release_n(self) -> sa.MetaData:
        raise NotImplementedError

    def expand_by_hand(self, dialect: str) -> list[str]:
        """The DDL of crossfade's expand, for `none` and `hand`."""
        raise NotImplementedError

    def backfill(self, dialect: str) -> list[str]:
        """The moved values of the rows loaded before expand, as a finished backfill leaves them."""
        raise NotImplementedError

    # Whether the crossfade variant backfills with Runner.migrate, or with `backfill` through its triggers.
    migrate_with_crossfade = True

    def load(self, conn: sa.Connection, dialect: str, half: int) -> None:
        conn.exec_driver_sql(f"INSERT INTO users ({self.columns}) SELECT {self.columns} FROM {SOURCE} WHERE id <= {half}")

    def statement(self, dialect: str, workload: str, half: int) -> str:
        if workload == "insert":
            return f"INSERT INTO users ({self.columns}) SELECT {self.columns} FROM {SOURCE} WHERE id > {half}"
        if workload == "update unrelated":
            return f"UPDATE users SET login = {label(dialect, 'renamed-', 'id')}"
        return self.synced_statement(dialect) if workload == "update synced" else self.target_statement(dialect)

    def synced_statement(self, dialect: str) -> str:
        raise NotImplementedError

    def target_statement(self, dialect: str) -> str:
        raise NotImplementedError

    def complete_none(self, dialect: str, workload: str, half: int) -> list[str]:
        """What `none` must write by hand after a workload, so the next one finds the same rows."""
        return []

    def problems(self, dialect: str, done: str) -> dict[str, str]:
        """Queries counting rows that break the sync law or miss the values written, once the
        workload `done` has run: each must return 0."""
        raise NotImplementedError

    def maintained_tables(self) -> tuple[str, ...]:
        raise NotImplementedError


class MoveScenario(Scenario):
    name = "move"
    hand = HAND_MOVE
    migrate_with_crossfade = False
    columns = "id, login, org_id, org_name"

    def change(self) -> Change:
        return Change(ops.move_column("users", "org_name", to="orgs", via="org_id", new="name"), id="bench_move")

    def release_n(self) -> sa.MetaData:
        md = sa.MetaData()
        sa.Table("orgs", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("title", sa.String(40)))
        sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("login", sa.String(40)),
                 sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), index=True),
                 sa.Column("org_name", sa.String(40)))
        return md

    def load(self, conn: sa.Connection, dialect: str, half: int) -> None:
        conn.exec_driver_sql(f"INSERT INTO orgs (id, title) SELECT i, {label(dialect, 'title-', 'i')} "
                             f"FROM {series(dialect, ORGS)}")
        super().load(conn, dialect, half)

    def expand_by_hand(self, dialect: str) -> list[str]:
        return ["ALTER TABLE orgs ADD COLUMN name VARCHAR(40)"]

    def backfill(self, dialect: str) -> list[str]:
        return [f"UPDATE orgs SET name = {label(dialect, 'org-', 'id')}"]

    def synced_statement(self, dialect: str) -> str:
        return f"UPDATE users SET org_name = {label(dialect, 'moved-', 'org_id')} WHERE org_id <= {SIBLING_ORGS}"

    def target_statement(self, dialect: str) -> str:
        return f"UPDATE orgs SET name = {label(dialect, 'renamed-', 'id')}"

    def problems(self, dialect: str, done: str) -> dict[str, str]:
        expected = label(dialect, "org-", "id")
        if done == "update synced":
            expected = f"CASE WHEN id <= {SIBLING_ORGS} THEN {label(dialect, 'moved-', 'id')} ELSE {expected} END"
        elif done == "update target":
            expected = label(dialect, "renamed-", "id")
        return {
            "users whose org_name is not their org's name": "SELECT count(*) FROM users u JOIN orgs o "
            f"ON o.id = u.org_id WHERE {distinct(dialect, 'u.org_name', 'o.name')}",
            "orgs without the name last written": f"SELECT count(*) FROM orgs WHERE {distinct(dialect, 'name', expected)}",
        }

    def maintained_tables(self) -> tuple[str, ...]:
        return ("users", "orgs")


class SplitScenario(Scenario):
    name = "split"
    hand = HAND_SPLIT
    columns = "id, login, bio, theme"

    def change(self) -> Change:
        return Change(ops.split_table("users", "profiles", ["bio", "theme"]), id="bench_split")

    def release_n(self) -> sa.MetaData:
        md = sa.MetaData()
        sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("login", sa.String(40)), sa.Column("bio", sa.String(200)), sa.Column("theme", sa.String(20)))
        return md

    def expand_by_hand(self, dialect: str) -> list[str]:
        # The table crossfade's expand creates, column for column.
        return [("CREATE TABLE profiles (id INTEGER NOT NULL, bio VARCHAR(200), theme VARCHAR(20), PRIMARY KEY (id), "
                "CONSTRAINT fk_profiles_id FOREIGN KEY (id) REFERENCES users (id) ON DELETE CASCADE)")]

    def backfill(self, dialect: str) -> list[str]:
        return [("INSERT INTO profiles (id, bio, theme) SELECT id, bio, theme FROM users "
                "WHERE bio IS NOT NULL OR theme IS NOT NULL")]

    def synced_statement(self, dialect: str) -> str:
        return f"UPDATE users SET bio = {label(dialect, 'bio-', 'id', '-v2')}"

    def target_statement(self, dialect: str) -> str:
        return f"UPDATE profiles SET theme = {label(dialect, 'theme-', 'id', '-v2')}"

    def complete_none(self, dialect: str, workload: str, half: int) -> list[str]:
        if workload == "insert":
            return [f"INSERT INTO profiles (id, bio, theme) SELECT id, bio, theme FROM users WHERE id > {half}"]
        return []

    def problems(self, dialect: str, done: str) -> dict[str, str]:
        bio = label(dialect, "bio-", "u.id", "-v2" if _reached(done, "update synced") else "")
        theme = label(dialect, "theme-", "u.id", "-v2" if _reached(done, "update target") else "")
        return {
            "users whose bio/theme differ from their profile's (or have no profile)": "SELECT count(*) FROM users u "
            f"LEFT JOIN profiles p ON p.id = u.id WHERE {distinct(dialect, 'u.bio', 'p.bio')} "
            f"OR {distinct(dialect, 'u.theme', 'p.theme')}",
            "users without the values last written": f"SELECT count(*) FROM users u WHERE {distinct(dialect, 'u.bio', bio)} "
            f"OR {distinct(dialect, 'u.theme', theme)}",
        }

    def maintained_tables(self) -> tuple[str, ...]:
        return ("users", "profiles")


def _reached(done: str, workload: str) -> bool:
    """`workload` has run once `done` has (they run in WORKLOADS order)."""
    return WORKLOADS.index(done) >= WORKLOADS.index(workload)


SCENARIOS = {s.name: s for s in (MoveScenario(), SplitScenario())}


# --- one variant's tables, built afresh --------------------------------------------------------

def setup(engine: sa.Engine, scenario: Scenario, variant: str, half: int) -> None:
    """Release N's tables with `half` users, expanded by crossfade or by hand (`hand` adds its
    triggers), the moved values in place as a finished backfill leaves them, statistics fresh."""
    dialect = engine.dialect.name
    drop_tables(engine, TABLES, FUNCTIONS)
    with engine.begin() as conn:
        scenario.release_n().create_all(conn)
        scenario.load(conn, dialect, half)
    if variant == "crossfade":
        expand_with_crossfade(engine, scenario.change(), migrate=scenario.migrate_with_crossfade)
        statements = [] if scenario.migrate_with_crossfade else scenario.backfill(dialect)
    else:  # the hand-written triggers go in after the backfill, which then needs none of them
        statements = [*scenario.expand_by_hand(dialect), *scenario.backfill(dialect),
                      *(scenario.hand[dialect] if variant == "hand" else [])]
    with engine.begin() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)
    maintain(engine, scenario.maintained_tables())


def expand_with_crossfade(engine: sa.Engine, change: Change, migrate: bool) -> None:
    # A separate engine: crossfade sets session lock timeouts (MariaDB: lock_wait_timeout = 0)
    # on its DDL connection, which must not leak into the benchmark's pooled connections.
    ddl_engine = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    try:
        runner = Runner(ddl_engine)
        runner.expand(change)
        if migrate:
            runner.migrate(change)
    finally:
        ddl_engine.dispose()


def check(engine: sa.Engine, scenario: Scenario, workload: str, expected_users: int) -> list[str]:
    """What is wrong with the tables after `workload` (nothing, when the triggers kept the law)."""
    found = []
    with engine.connect() as conn:
        users = conn.exec_driver_sql("SELECT count(*) FROM users").scalar()
        if users != expected_users:
            found.append(f"{users} users instead of {expected_users}")
        for what, sql in scenario.problems(engine.dialect.name, workload).items():
            count = conn.exec_driver_sql(sql).scalar()
            if count:
                found.append(f"{count} {what}")
    return found


# --- the run ------------------------------------------------------------------------------------

def run_chain(engine: sa.Engine, scenario: Scenario, variant: str, rows: int, record, log) -> None:
    """Build `variant`'s tables and run every workload on them, in order."""
    dialect, half = engine.dialect.name, rows // 2
    started = time.perf_counter()
    setup(engine, scenario, variant, half)
    log(f"  {dialect:<10} {scenario.name:<5} {'(setup)':<16} {variant:<9} {time.perf_counter() - started:9.1f} s")
    for workload in WORKLOADS:
        seconds = timed(engine, scenario.statement(dialect, workload, half))
        record(workload, seconds)
        log(f"  {dialect:<10} {scenario.name:<5} {workload:<16} {variant:<9} {seconds * 1000:9.1f} ms")
        if variant == "none":
            with engine.begin() as conn:
                for sql in scenario.complete_none(dialect, workload, half):
                    conn.exec_driver_sql(sql)
        else:
            wrong = check(engine, scenario, workload, rows)
            if wrong:
                raise SystemExit(f"{dialect} {scenario.name} {variant} after {workload}: " + "; ".join(wrong))
        maintain(engine, scenario.maintained_tables())


def run_dialect(dialect: str, scenarios: list[Scenario], rows: int, reps: int, log) -> dict:
    engine = make_engine(dialect)
    make_source(engine, rows)
    times = {(s.name, w, v): [] for s in scenarios for w in WORKLOADS for v in VARIANTS}
    for rep in range(reps):
        order = VARIANTS[rep % len(VARIANTS):] + VARIANTS[:rep % len(VARIANTS)]
        log(f"{dialect} rep {rep + 1}/{reps}: {', '.join(order)}")
        for scenario in scenarios:
            for variant in order:
                run_chain(engine, scenario, variant, rows,
                          lambda w, s, key=(scenario.name, variant): times[key[0], w, key[1]].append(s), log)
    drop_tables(engine, TABLES, FUNCTIONS)
    engine.dispose()
    return times


def table_rows(dialect: str, scenarios: list[Scenario], times: dict) -> list[list[str]]:
    rows = []
    for scenario in scenarios:
        for workload in WORKLOADS:
            none, hand, cf = (median(times[scenario.name, workload, v]) for v in VARIANTS)
            best = min(times[scenario.name, workload, "crossfade"]) / min(times[scenario.name, workload, "hand"])
            verdict = ("ok" if cf / hand <= TARGET else "MISS") + f" cf/hand<={TARGET}"
            rows.append([dialect, scenario.name, workload, f"{none * 1000:.0f}", f"{hand * 1000:.0f}",
                         f"{cf * 1000:.0f}", f"{cf / none:.2f}", f"{cf / hand:.2f}", f"{best:.2f}",
                         f"{hand / none:.2f}", verdict])
    return rows


HEADERS = ["dialect", "scenario", "workload", "none ms", "hand ms", "crossfade ms", "crossfade/none",
           "crossfade/hand", "cf/hand (min)", "hand/none", "target"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="users in all (half loaded before expand)")
    parser.add_argument("--dialect", nargs="+", choices=DIALECTS, default=list(DIALECTS))
    parser.add_argument("--scenario", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quiet", action="store_true", help="no per-measurement progress lines")
    args = parser.parse_args(argv)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    scenarios = [SCENARIOS[name] for name in args.scenario]

    print(f"# crossfade cross-table trigger overhead: {args.rows:,} users, {ORGS:,} orgs, "
          f"median of {args.reps} interleaved runs")
    print(f"# python benchmarks/cross_table.py --rows {args.rows} --reps {args.reps} "
          f"--dialect {' '.join(args.dialect)} --scenario {' '.join(args.scenario)}")
    print()
    rows = []
    started = time.perf_counter()
    for dialect in args.dialect:
        rows += table_rows(dialect, scenarios, run_dialect(dialect, scenarios, args.rows, args.reps, log))
        print(markdown(HEADERS, rows), file=sys.stderr, flush=True)
    print(markdown(HEADERS, rows))
    print()
    print(f"(ms: median wall time of one statement, commit included; insert adds {args.rows // 2:,} users to "
          f"{args.rows // 2:,}; total run {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
