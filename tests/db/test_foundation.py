"""The schema, the codec through SQL and bayes_get_state on a real cluster."""

from __future__ import annotations

import importlib.util
import json
import marshal
import math
import uuid

import numpy as np
import psycopg
import pytest
from bayes_dev.support import ROOT, act_as, migration_files, new_player, psql
from bayes_engine import codec, describe, params
from psycopg import errors

pytestmark = pytest.mark.db


def scalar(conn, sql, args=()):
    return conn.execute(sql, args).fetchone()[0]


def create_state(conn, user_id, chapter=1) -> dict:
    state = scalar(conn, "select bayes.default_state(%s)", (chapter,))
    conn.execute(
        "insert into public.user_bayesian_state (user_id, state) values (%s, %s)", (user_id, json.dumps(state))
    )
    return state


def test_extensions_are_created_by_the_migrations(conn):
    rows = dict(conn.execute("select extname, extnamespace::regnamespace::text from pg_extension").fetchall())
    assert rows["plpython3u"] == "pg_catalog"
    assert rows["pg_cron"] == "pg_catalog"


def test_functions_migration_can_be_applied_again(dsn):
    # create or replace throughout: re-running the newest migration changes nothing.
    psql(dsn, "--single-transaction", "-f", str(migration_files()[-1]))


def test_parameter_tables_hold_the_model_defaults(conn, default_time_window):
    snapshot = scalar(conn, "select bayes.params_snapshot()")
    expected = params.DEFAULT_SNAPSHOT
    assert [c["chapter"] for c in snapshot["chapters"]] == [1, 2, 3, 4, 5]
    for got, want in zip(snapshot["chapters"], expected["chapters"]):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-12), (got["chapter"], key)
    assert snapshot["global"].keys() == expected["global"].keys()
    for key, want in expected["global"].items():
        got = snapshot["global"][key]
        if key.startswith(("feature_", "lexicon_")):  # objects and word lists: exactly the defaults
            assert got == want, key
        else:
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("chapter", [1, 2, 3, 4, 5])
def test_default_state_in_sql_is_the_python_default(conn, chapter):
    text = scalar(conn, "select bayes.default_state(%s)::text", (chapter,))
    assert len(text.encode()) <= 512
    want = codec.default_state(chapter, params.DEFAULT_PARAMS)
    assert codec.decode(text) == codec.decode(codec.encode(want))


@pytest.mark.parametrize("chapter", [0, 6, -1])
def test_default_state_rejects_an_unknown_chapter(conn, chapter):
    with pytest.raises(errors.InvalidParameterValue, match="chapter"):
        conn.execute("select bayes.default_state(%s)", (chapter,))


def test_generated_columns_follow_the_state(conn):
    user_id = new_player(conn)
    state = create_state(conn, user_id, chapter=3)
    chapter, composite = conn.execute(
        "select chapter, composite from public.user_bayesian_state where user_id = %s", (user_id,)
    ).fetchone()
    assert chapter == 3
    view = describe.describe_state(codec.decode(state), params.DEFAULT_PARAMS)
    assert composite == pytest.approx(view["composite"], rel=1e-12)
    # independent: 100 * sum w * alpha / (alpha + beta)
    weights = {"i": 0.30, "p": 0.25, "t": 0.25, "s": 0.20}
    assert composite == pytest.approx(
        100 * sum(w * a / (a + b) for k, w in weights.items() for a, b in [state["m"][k]])
    )
    # the column writes bayes.state_composite's formula out (migration 0005): same float, no call
    assert composite == scalar(
        conn, "select bayes.state_composite(state) from public.user_bayesian_state where user_id = %s", (user_id,)
    )
    expression = scalar(
        conn,
        """
        select pg_get_expr(d.adbin, d.adrelid)
        from pg_attrdef as d
        join pg_attribute as a on a.attrelid = d.adrelid and a.attnum = d.adnum
        where d.adrelid = 'public.user_bayesian_state'::regclass and a.attname = 'composite'""",
    )
    assert "state #>> '{m,i,0}'" in expression and "state_composite" not in expression


def test_decode_state_refuses_a_corrupt_state(conn):
    state = scalar(conn, "select bayes.default_state(1)")
    state["m"]["i"][0] = -1.0
    with pytest.raises(errors.DataCorrupted, match=r"m\.i"):
        conn.execute("select bayes.decode_state(%s)", (json.dumps(state),))


def test_decode_state_refuses_a_newer_schema_version(conn):
    state = scalar(conn, "select bayes.default_state(1)")
    state["v"] = 3
    with pytest.raises(errors.FeatureNotSupported, match="newer"):
        conn.execute("select bayes.decode_state(%s)", (json.dumps(state),))


def test_get_state_as_service_role(conn):
    user_id = new_player(conn)
    create_state(conn, user_id, chapter=2)
    act_as(conn, "service_role")
    got = scalar(conn, "select public.bayes_get_state(%s)", (user_id,))
    assert got["user_id"] == str(user_id)
    assert got["chapter"] == 2 and got["n"] == 0 and got["version"] == 1
    intimacy = got["metrics"]["intimacy"]
    assert intimacy["mean"] == pytest.approx(0.40)
    assert intimacy["var"] == pytest.approx(4.8 * 7.2 / (12**2 * 13))
    assert intimacy["ci95"][0] < 0.40 < intimacy["ci95"][1]
    assert got["boss"]["threshold"] == 60
    assert math.isfinite(got["composite_sd"])


def test_get_state_of_an_unknown_player_is_p0002(conn):
    act_as(conn, "service_role")
    with pytest.raises(errors.NoDataFound):
        conn.execute("select public.bayes_get_state(%s)", (uuid.uuid4(),))


def test_get_state_of_null_is_22004(conn):
    act_as(conn, "service_role")
    with pytest.raises(errors.NullValueNotAllowed):
        conn.execute("select public.bayes_get_state(null)")


def test_a_player_reads_his_own_state_and_no_other(conn):
    alice, bob = new_player(conn), new_player(conn)
    create_state(conn, alice)
    create_state(conn, bob)
    act_as(conn, "authenticated", alice)
    assert scalar(conn, "select public.bayes_get_state(%s)", (alice,))["user_id"] == str(alice)
    assert [r[0] for r in conn.execute("select user_id from public.user_bayesian_state").fetchall()] == [alice]
    with pytest.raises(errors.InsufficientPrivilege, match="only his own"):
        conn.execute("select public.bayes_get_state(%s)", (bob,))


def test_anon_can_do_nothing(conn):
    user_id = new_player(conn)
    create_state(conn, user_id)
    act_as(conn, "anon")
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute("select public.bayes_get_state(%s)", (user_id,))


def test_anon_cannot_read_the_table(conn):
    act_as(conn, "anon")
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute("select * from public.user_bayesian_state")


@pytest.mark.parametrize(
    "statement",
    [
        "update public.user_bayesian_state set version = version + 1",
        "delete from public.user_bayesian_state",
        "insert into public.user_bayesian_state (user_id, state) values (auth.uid(), '{}')",
    ],
)
def test_a_player_never_writes_his_row(conn, statement):
    user_id = new_player(conn)
    create_state(conn, user_id)
    act_as(conn, "authenticated", user_id)
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_a_changed_parameter_changes_the_next_call(conn):
    user_id = new_player(conn)
    create_state(conn, user_id, chapter=1)
    conn.execute("update bayes.chapter_params set boss_threshold = 58 where chapter = 1")
    act_as(conn, "service_role")
    assert scalar(conn, "select public.bayes_get_state(%s)", (user_id,))["boss"]["threshold"] == 58


def test_an_invalid_parameter_is_a_clear_error(conn):
    user_id = new_player(conn)
    create_state(conn, user_id)
    with pytest.raises(errors.InvalidParameterValue, match="global.discount must be a number"), conn.transaction():
        conn.execute("update bayes.params set value = '\"high\"' where name = 'discount'")  # refused when written
    # What slips through (the triggers off, as in a restore) is the same clear error from every call.
    conn.execute("set local session_replication_role = replica")
    conn.execute("update bayes.params set value = '\"high\"' where name = 'discount'")
    conn.execute("update bayes.params_revision set revision = revision + 1")
    with pytest.raises(errors.InvalidParameterValue, match="discount"):
        conn.execute("select public.bayes_get_state(%s)", (user_id,))


def test_a_corrupt_row_is_an_error_never_a_reset(conn):
    user_id = new_player(conn)
    create_state(conn, user_id)
    corrupt = (
        "update public.user_bayesian_state set state = jsonb_set(state, '{h}', '[1, 1, 1, 1, 1, 1]') where user_id = %s"
    )
    with pytest.raises(errors.CheckViolation, match="h must sum to 1"), conn.transaction():
        conn.execute(corrupt, (user_id,))  # the table refuses it (issue 12)
    conn.execute("set local session_replication_role = replica")  # as a restore or a bug might write it
    conn.execute(corrupt, (user_id,))
    conn.execute("set local session_replication_role = origin")
    with pytest.raises(errors.DataCorrupted, match="h"), conn.transaction():
        conn.execute("select public.bayes_get_state(%s)", (user_id,))
    assert scalar(conn, "select state -> 'h' from public.user_bayesian_state where user_id = %s", (user_id,)) == [1] * 6


def test_a_backend_reloads_the_code_of_a_new_build(dsn):
    """A connection that holds an older copy of the package loads the new one
    on its next call after a functions migration changed a module of
    bayes.py_module (pooled PostgREST backends), and runs the new code."""
    with psycopg.connect(dsn, autocommit=True) as old_backend, psycopg.connect(dsn) as deployer:
        build = scalar(old_backend, "select bayes.py_build()")
        assert scalar(old_backend, "select bayes.loaded_build()") is None
        assert scalar(old_backend, "select bayes.default_state(1) ->> 'v'") == "2"
        assert scalar(old_backend, "select bayes.loaded_build()") == build
        original = scalar(deployer, "select source from bayes.py_module where name = 'bayes_engine'")
        changed = original.replace("SCHEMA_VERSION = 2\n", "SCHEMA_VERSION = 7\n")
        assert changed != original
        install = "select bayes.install_py_module('bayes_engine', encode(sha256(convert_to(%s, 'UTF8')), 'hex'), %s)"
        deployer.execute(install, (changed, changed))
        deployer.commit()
        try:
            new_build = scalar(deployer, "select bayes.py_build()")
            assert new_build != build
            assert scalar(old_backend, "select bayes.default_state(1) ->> 'v'") == "7"
            assert scalar(old_backend, "select bayes.loaded_build()") == new_build
        finally:
            deployer.execute(install, (original, original))
            deployer.commit()
        assert scalar(old_backend, "select bayes.default_state(1) ->> 'v'") == "2"
        assert scalar(old_backend, "select bayes.loaded_build()") == build


def test_the_modules_in_the_database_are_the_package_sources(conn):
    rows = dict(conn.execute("select name, source from bayes.py_module").fetchall())
    package = ROOT / "plpython" / "bayes_engine"
    expected = {}
    for path in package.rglob("*.py"):
        name = ".".join(["bayes_engine", *path.relative_to(package).with_suffix("").parts])
        expected[name.removesuffix(".__init__")] = path.read_text()
    assert rows == expected


def test_a_module_whose_text_does_not_match_its_hash_is_refused(conn):
    with pytest.raises(errors.InvalidParameterValue, match="does not match its hash"), conn.transaction():
        conn.execute("select bayes.install_py_module('bayes_engine.extra', repeat('0', 64), 'X = 1')")


SERVER_MAGIC_SQL = (
    "create function pg_temp.server_magic() returns bytea language plpython3u"
    " as 'import importlib.util; return importlib.util.MAGIC_NUMBER'"
)


def test_every_module_is_stored_compiled_by_the_servers_python(conn):
    """bayes.py_module keeps each module's code as the server's Python compiles its source (issue 15)."""
    conn.execute(SERVER_MAGIC_SQL)
    magic = bytes(scalar(conn, "select pg_temp.server_magic()"))
    rows = conn.execute("select name, source, sha256, code, code_magic from bayes.py_module").fetchall()
    assert len(rows) > 10
    for name, source, sha, code, code_magic in rows:
        assert bytes(code_magic) == magic, name
        if magic == importlib.util.MAGIC_NUMBER:  # the same bytecode as this Python's compile of the source
            expected = compile(source, f"<bayes_engine {name} {sha[:16]}>", "exec", dont_inherit=True)
            assert marshal.loads(bytes(code)) == expected, name
    assert magic == importlib.util.MAGIC_NUMBER, "the test's Python reads other bytecode: the code was not compared"


def test_a_backend_runs_the_stored_code_of_its_own_python_else_the_source(conn):
    """py_load unmarshals the stored code when its magic number is the server's, and compiles the source otherwise."""
    source = scalar(conn, "select source from bayes.py_module where name = 'bayes_engine'")
    seven = marshal.dumps(compile(source.replace("SCHEMA_VERSION = 2\n", "SCHEMA_VERSION = 7\n"), "x", "exec"))
    # Only the code changes, past the trigger (which compiles the source on every write): a backend that
    # uses it says 7.
    conn.execute("set local session_replication_role = replica")
    conn.execute("update bayes.py_module set code = %s where name = 'bayes_engine'", (seven,))
    conn.execute("set local session_replication_role = origin")
    conn.execute("select bayes.py_load()")
    assert scalar(conn, "select bayes.default_state(1) ->> 'v'") == "7"
    # Code of another Python (another magic number) is never unmarshalled: the source is compiled.
    conn.execute("update bayes.py_module set code_magic = '\\x00000d0a' where name = 'bayes_engine'")
    conn.execute("select bayes.py_load()")
    assert scalar(conn, "select bayes.default_state(1) ->> 'v'") == "2"
    conn.rollback()
    conn.execute("select bayes.py_load()")
    assert scalar(conn, "select bayes.default_state(1) ->> 'v'") == "2"


def test_a_write_of_the_code_alone_stores_the_compiled_source(conn):
    """The code a backend runs is always its source compiled: a statement that writes only code is overruled."""
    other = marshal.dumps(compile("SCHEMA_VERSION = 7\n", "x", "exec"))
    conn.execute("update bayes.py_module set code = %s where name = 'bayes_engine'", (other,))
    assert bytes(scalar(conn, "select code from bayes.py_module where name = 'bayes_engine'")) != other
    conn.execute("select bayes.py_load()")
    assert scalar(conn, "select bayes.default_state(1) ->> 'v'") == "2"
    conn.rollback()


def test_a_module_that_does_not_compile_is_refused(conn):
    source = "def broken(:\n"
    with pytest.raises(errors.InvalidParameterValue, match="does not compile"), conn.transaction():
        conn.execute(
            "select bayes.install_py_module('bayes_engine.extra', encode(sha256(convert_to(%s, 'UTF8')), 'hex'), %s)",
            (source, source),
        )
    assert scalar(conn, "select count(*) from bayes.py_module where name = 'bayes_engine.extra'") == 0


def test_a_parameter_row_the_engine_does_not_read_is_a_warning(conn):
    """A misspelt name changes nothing, so say so; newer code's rows arrive before that code (a migration)."""
    warnings: list[str] = []
    conn.add_notice_handler(lambda diag: warnings.append(diag.message_primary))
    conn.execute("insert into bayes.params (name, value, description) values ('discout', '0.9', 'a typo')")
    assert warnings == ["bayes.params has rows that this code does not read: discout"]
    assert scalar(conn, "select value from bayes.params where name = 'discout'") == 0.9
