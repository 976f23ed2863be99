"""Keystone 003 (examples/keystone/k003_credential_encryption and the Alembic project
examples/keystone/alembic): what Keystone's own test asserted, through real triggers on SQLite,
PostgreSQL and MariaDB. Inserts fail after expand and after the data migration and succeed after
contract; after the data migration every row has encrypted_blob and key_hash, and blob is
unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner

from crossfade.cli import app
from crossfade.loader import import_file
from crossfade.runner import Runner

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "keystone"
K003 = import_file(EXAMPLES / "k003_credential_encryption" / "change.py")
ALEMBIC = EXAMPLES / "alembic"
MESSAGE = "Credential migration in progress. Cannot perform writes to credential table."
credential_n = K003.metadata.tables["credential"]
credential_n1 = K003.metadata_n1.tables["credential"]
ROWS = 30


def release_n_with_credentials(engine) -> dict[str, str]:
    with engine.begin() as conn:
        K003.metadata.create_all(conn)
        conn.execute(credential_n.insert(), [
            {"id": f"cred{i:03d}", "user_id": f"user{i % 4}", "project_id": None if i % 3 else f"p{i}",
             "blob": f'{{"access": "a{i}", "secret": "s{i}\'\\\\"}}', "type": "ec2", "extra": None}
            for i in range(ROWS)])
    return blobs(engine)


def blobs(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(credential_n.c.id, credential_n.c.blob)).all())


def insert_refused(engine, table=credential_n, **extra) -> str:
    values = {"id": "new", "user_id": "u", "type": "ec2", **extra}
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
        conn.execute(table.insert().values(values))
    return str(caught.value.orig.args[-1])


def assert_encrypted(engine, before: dict[str, str]) -> None:
    credential = sa.Table("credential", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(credential)).mappings().all()
    assert len(rows) == ROWS
    for row in rows:
        assert row["blob"] == before[row["id"]]  # unchanged
        assert row["key_hash"] == K003.encryption.key_hash()
        assert K003.encryption.decrypt(row["encrypted_blob"], row["id"]) == before[row["id"]]


def test_keystone_003_with_the_runner_as_keystones_test_asserted(engine):
    before = release_n_with_credentials(engine)
    runner = Runner(engine, batch_size=8)
    runner.expand(K003.change)
    assert MESSAGE in insert_refused(engine, blob="b")  # after expand
    with pytest.raises(sa.exc.DBAPIError, match="Credential migration in progress"), engine.begin() as conn:
        conn.execute(credential_n.update().where(credential_n.c.id == "cred001").values(extra="{}"))  # leaves it NULL

    runner.migrate(K003.change)  # the data migration: every row encrypted in Python
    assert_encrypted(engine, before)
    assert MESSAGE in insert_refused(engine, blob="b")  # after the data migration
    with engine.begin() as conn:  # an update that leaves encrypted_blob set passes Keystone's rule
        conn.execute(credential_n.update().where(credential_n.c.id == "cred001").values(extra="{}"))

    runner.contract(K003.change)
    with engine.begin() as conn:  # after contract: release N+1 inserts
        conn.execute(credential_n1.insert().values(id="new", user_id="u", type="ec2", encrypted_blob="e",
                                                   key_hash=K003.encryption.key_hash()))
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("credential")}
    assert "blob" not in columns
    assert not columns["encrypted_blob"]["nullable"] and not columns["key_hash"]["nullable"]
    assert runner.problems(K003.change) == []


def test_keystone_003_rollback_gives_release_n_its_table_back(engine):
    before = release_n_with_credentials(engine)
    runner = Runner(engine)
    runner.expand(K003.change)
    runner.migrate(K003.change)
    runner.rollback(K003.change)
    assert blobs(engine) == before
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("credential")}
    assert "encrypted_blob" not in columns and not columns["blob"]["nullable"]
    with engine.begin() as conn:  # release N writes again
        conn.execute(credential_n.insert().values(id="new", user_id="u", type="ec2", blob="b"))


def test_keystone_003_with_the_cli_on_the_example_directory(engine):
    before = release_n_with_credentials(engine)
    url = engine.url.render_as_string(hide_password=False)
    cli = CliRunner()
    changes = str(EXAMPLES / "k003_credential_encryption" / "change.py")
    for phase in ("expand", "migrate"):
        result = cli.invoke(app, [phase, changes, "--url", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert MESSAGE in insert_refused(engine, blob="b")
    assert_encrypted(engine, before)
    assert cli.invoke(app, ["contract", changes, "--url", url], catch_exceptions=False).exit_code == 0
    assert cli.invoke(app, ["check", changes, "--url", url]).exit_code == 0


def project_003(tmp_path: Path) -> Path:
    """The Alembic project with keystone_003 alone (014 and 024 need Keystone's user and password
    tables, which these tests do not build), laid out as in examples/keystone."""
    root = tmp_path / "keystone"
    shutil.copytree(ALEMBIC, root / "alembic")
    for revision in (root / "alembic" / "versions").glob("*.py"):
        if not revision.name.startswith("keystone_003"):
            revision.unlink()
    (root / "k003_credential_encryption").symlink_to(EXAMPLES / "k003_credential_encryption")
    return root / "alembic"


def alembic_config(url: str, project: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(project))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def test_keystone_003_as_an_alembic_project_with_the_crossfade_cli(engine, tmp_path):
    project = project_003(tmp_path)
    before = release_n_with_credentials(engine)
    url = engine.url.render_as_string(hide_password=False)
    cli = CliRunner()
    for phase in ("expand", "migrate"):
        result = cli.invoke(app, [phase, str(project), "--url", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert MESSAGE in insert_refused(engine, blob="b")
    assert_encrypted(engine, before)
    contracted = cli.invoke(app, ["contract", str(project), "--url", url], catch_exceptions=False)
    assert contracted.exit_code == 0, contracted.output
    assert "stamp alembic_version keystone_003" in contracted.stdout
    with engine.begin() as conn:
        conn.execute(credential_n1.insert().values(id="new", user_id="u", type="ec2", encrypted_blob="e",
                                                   key_hash="h"))


def test_keystone_003_offline_with_plain_alembic_upgrade_head(engine, tmp_path):
    before = release_n_with_credentials(engine)
    command.upgrade(alembic_config(engine.url.render_as_string(hide_password=False), project_003(tmp_path)), "head")
    credential = sa.Table("credential", sa.MetaData(), autoload_with=engine)
    assert "blob" not in credential.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(credential)).mappings().all()
    assert {r["id"]: K003.encryption.decrypt(r["encrypted_blob"], r["id"]) for r in rows} == before


def test_the_stand_in_encryption_round_trips_and_is_deterministic():
    secret = 'κλειδί "x" \\ \n end'
    once = K003.encryption.encrypt(secret, "id1")
    assert once == K003.encryption.encrypt(secret, "id1") != K003.encryption.encrypt(secret, "id2")
    assert K003.encryption.decrypt(once, "id1") == secret
    assert len(K003.encryption.key_hash()) == 64
