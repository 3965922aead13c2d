"""Who may do what in the partitioned mode (issue 17), beyond the pgTAP files
(tests/e2e/test_pgtap.py runs 02-rls.sql and 03-privileges.sql at the proxy)
and the end-to-end privilege tests (parametrized over both modes):

- the proxy's public RPCs have the single node's names, arguments, defaults,
  result types, volatility and EXECUTE grants;
- the PL/Proxy functions (schema bayes_remote), which take the role and the
  claims a partition acts with as arguments, are executable by no API role:
  only the RPCs' owner calls them;
- on a partition, the entry points (schema bayes_partition) are bayes_proxy's
  only, and bayes_proxy is what the proxy decided: the partition applies the
  single node's checks to the role and claims it is given, and takes no other
  role than an API role."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

pytestmark = pytest.mark.e2e

RPCS = (
    "bayes_process_message",
    "bayes_apply_llm_scores",
    "bayes_record_outcome",
    "bayes_advance_chapter",
    "bayes_get_state",
    "bayes_boss_readiness",
    "bayes_fallback_check",
)
ROLES = ("anon", "authenticated", "service_role", "authenticator", "bayes_proxy")


def rpc_surface(conn) -> list[tuple]:
    return conn.execute(
        "select p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.provolatile::text,"
        " array(select r.role from unnest(%s::text[]) as r (role)"
        "       where has_function_privilege(r.role, p.oid, 'execute') order by r.role)"
        " from pg_proc as p where p.pronamespace = 'public'::regnamespace and p.proname = any(%s) order by 1, 2",
        (list(ROLES), list(RPCS)),
    ).fetchall()


def test_the_proxys_rpcs_have_the_single_nodes_signatures_and_grants(db, proxy_db):
    single = rpc_surface(db)
    assert [row[0] for row in single] == sorted(RPCS)
    assert rpc_surface(proxy_db) == single


def test_no_api_role_may_reach_the_plproxy_functions(proxy_db):
    """The functions that pass a role and claims to the partitions (the PL/Proxy
    functions, and whatever takes a p_role) are executable by no API role and not
    by PUBLIC. The analytics views' readers (bayes_remote.read_<table>()) are
    PUBLIC's on purpose: a view calls them with its caller's rights, they take no
    argument and check the caller's SELECT on their view themselves."""
    functions = [
        oid
        for (oid,) in proxy_db.execute(
            "select p.oid::regprocedure::text from pg_proc as p"
            " where p.pronamespace = 'bayes_remote'::regnamespace"
            "   and (p.prolang = (select l.oid from pg_language as l where l.lanname = 'plproxy')"
            "        or 'p_role' = any(p.proargnames))"
        )
    ]
    assert len(functions) >= len(RPCS)  # one per RPC at least
    allowed = proxy_db.execute(
        "select f, r.role from unnest(%s::text[]) as f, unnest(%s::text[]) as r (role)"
        " where has_function_privilege(r.role, f::regprocedure, 'execute')",
        (functions, list(ROLES)),
    ).fetchall()
    assert allowed == []
    public = proxy_db.execute(
        "select p.oid::regprocedure::text"
        " from pg_proc as p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as a"
        " where p.pronamespace = 'bayes_remote'::regnamespace and a.grantee = 0 order by 1"
    ).fetchall()
    assert public, "the views' readers are PUBLIC's"
    assert all(name.startswith("bayes_remote.read_") and name.endswith("()") for (name,) in public), public


def test_the_entry_points_are_the_proxys_login_only(partition_dbs):
    conn = partition_dbs[0]
    rows = conn.execute(
        "select p.proname, r.role, has_function_privilege(r.role, p.oid, 'execute')"
        " from pg_proc as p, unnest(%s::text[]) as r (role)"
        " where p.pronamespace = 'bayes_partition'::regnamespace",
        (list(ROLES),),
    ).fetchall()
    assert {fn for fn, _, _ in rows} >= {*RPCS, "caller_role"}
    assert {(role, allowed) for _, role, allowed in rows} == {
        ("anon", False),
        ("authenticated", False),
        ("service_role", False),
        ("authenticator", False),
        ("bayes_proxy", True),
    }
    assert conn.execute(
        "select rolcanlogin, rolinherit, rolsuper, rolbypassrls from pg_roles where rolname = 'bayes_proxy'"
    ).fetchone() == (True, False, False, False)


def test_bayes_proxy_has_no_login_on_a_single_node(db):
    assert db.execute("select rolcanlogin from pg_roles where rolname = 'bayes_proxy'").fetchone() == (False,)


def as_proxy_login(pstack, i: int):
    """A connection to partition i as bayes_proxy, the proxy's login (its password: the stack's)."""
    url = pstack["PARTITIONS"][i].replace("postgres:", "bayes_proxy:", 1)
    return psycopg.connect(url, autocommit=True)


def test_a_partition_applies_the_single_nodes_checks_to_what_it_is_given(pstack, proxy_db):
    user_id, stranger = uuid.uuid4(), uuid.uuid4()
    proxy_db.execute("select public.bayes_process_message(%s, 'hello', now(), 'm1')", (user_id,))
    (i,) = proxy_db.execute("select hashtext(%s::text) & %s", (str(user_id), len(pstack["PARTITIONS"]) - 1)).fetchone()
    claims = json.dumps({"role": "authenticated", "sub": str(stranger)})
    read = "select bayes_partition.bayes_get_state(%s, %s, null, 'UTC', %s)"
    with as_proxy_login(pstack, i) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only his own"):
            conn.execute(read, ("authenticated", claims, user_id))
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match="permission denied for function bayes_get_state"
        ):
            conn.execute(read, ("anon", json.dumps({"role": "anon"}), user_id))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="passed no API role"):
            conn.execute(read, ("postgres", None, user_id))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "select bayes_partition.bayes_process_message('authenticated', %s, null, 'UTC', %s, 'hi',"
                " now(), null, null, null)",
                (json.dumps({"role": "authenticated", "sub": str(user_id)}), user_id),
            )
        own = json.dumps({"role": "authenticated", "sub": str(user_id)})
        (state,) = conn.execute(read + "::text", ("authenticated", own, user_id)).fetchone()
        assert json.loads(state)["user_id"] == str(user_id)
        # back to itself after each call: the role and the claims were the call's only
        assert conn.execute("select current_user, current_setting('request.jwt.claims', true)").fetchone() in (
            ("bayes_proxy", None),
            ("bayes_proxy", ""),
        )
        # the login itself reads nothing (it inherits none of the API roles), and is no one else
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from public.user_bayesian_state")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("set role postgres")
