import click
import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from gazeback.cli import identity as cli_identity
from gazeback.db import identities as store_leaks


def make_db(tmp_path):
    from gazeback.cli import _open_db

    path = tmp_path / "trail.db"
    _open_db(path).close()
    return str(path)


@pytest.fixture
def cli():
    group = click.Group()
    group.add_command(cli_identity.identity)
    group.add_command(cli_identity.rescan)
    return group


def test_identity_add_list_remove(cli, tmp_path):
    db = make_db(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["identity", "add", "--db", db, "email", "jane@example.org", "--label", "me"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    result = runner.invoke(
        cli,
        ["identity", "add", "--db", db, "phone", "-"],
        input="+4915112345678\n",
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    result = runner.invoke(cli, ["identity", "list", "--db", db], catch_exceptions=False)
    assert result.output == (
        "id\tkind\tlabel\tvalue (masked)\n1\temail\tme\tj***@e***.org\n2\tphone\tphone\t+4***78\n"
    )
    assert "jane" not in result.output
    assert runner.invoke(cli, ["identity", "remove", "--db", db, "1"]).exit_code == 0
    assert [r["id"] for r in Database(db)["identities"].rows] == [2]


def test_identity_errors(cli, tmp_path):
    db = make_db(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["identity", "add", "--db", db, "location", "north"])
    assert result.exit_code == 1 and "lat,lon" in result.output
    result = runner.invoke(cli, ["identity", "remove", "--db", db, "9"])
    assert result.exit_code == 1 and "gazeback identity list" in result.output
    result = runner.invoke(cli, ["identity", "add", "--db", db, "colour", "red"])
    assert result.exit_code == 2


def test_rescan(cli, tmp_path):
    db = make_db(tmp_path)
    runner = CliRunner()
    assert "Add an identity first" in runner.invoke(cli, ["rescan", "--db", db]).output
    runner.invoke(
        cli, ["identity", "add", "--db", db, "email", "jane@example.org"], catch_exceptions=False
    )
    database = Database(db)
    database["requests"].insert(
        {"id": 1, "flow_id": "f", "kind": "http", "host": "h", "started_at": "2026-01-01T00:00:00Z"}
    )
    key = store_leaks.load_key(db)
    from gazeback.leaks.detect import fingerprint

    store_leaks.save_leaf_fingerprints(
        database, 1, [(fingerprint(key, "jane@example.org"), "url.query:e")]
    )
    result = runner.invoke(cli, ["rescan", "--db", db], catch_exceptions=False)
    assert result.output == "1 new leak rows.\n"


@pytest.mark.parametrize("command", ["add", "list", "remove"])
def test_help_has_an_example(cli, command):
    result = CliRunner().invoke(cli, ["identity", command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_a_missing_database_is_not_created(cli, tmp_path):
    missing = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, ["identity", "list", str(missing)])
    assert result.exit_code == 1 and "does not exist" in result.output
    assert not missing.exists()
