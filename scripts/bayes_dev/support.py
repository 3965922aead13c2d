"""Shared by the database and end-to-end tests, scripts/demo.py and
scripts/bench.py: paths, and how a plain cluster is turned into what the
project runs on (the local Supabase bootstrap, then the built migrations, in
order, one transaction each, as `supabase db push`), players, tokens and a
client of the local stack.

ROOT is the repository this file lives in: bayes_dev is installed editable
(scripts/setup), so its modules are read from scripts/bayes_dev/."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import jwt

from supabase import ClientOptions, create_client

ROOT = Path(__file__).resolve().parents[2]  # scripts/bayes_dev/support.py
MIGRATIONS = ROOT / "supabase" / "migrations"
BOOTSTRAP = ROOT / "scripts" / "local_supabase_bootstrap.sql"
# The deployments an end-to-end test may run on (tests/conftest.py): the single
# node, and the partitioned mode of issue 17 (a PL/Proxy proxy and its partitions).
MODES = ("single", "partitioned")


def psql(dsn: str, *args: str) -> subprocess.CompletedProcess:
    """Run psql against dsn; raise with its stderr when it fails."""
    proc = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, *args],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"psql {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS.glob("*.sql"))


def bootstrap_and_migrate(dsn: str) -> None:
    psql(dsn, "-v", "authenticator_password=postgres", "-f", str(BOOTSTRAP))
    for path in migration_files():
        psql(dsn, "--single-transaction", "-f", str(path))


def cron_cluster(dbname: str):
    """A pytest-postgresql cluster fixture, run as the `postgres` user, with
    pg_cron preloaded for database `dbname` (pg_cron lives in one database per
    cluster, so each database that the migrations build needs its own)."""
    from pytest_postgresql import factories  # a test dependency: not for the demo

    return factories.postgresql_proc(
        executable=str(ROOT / "scripts" / "pg_ctl_unprivileged"),
        postgres_options=f"-c shared_preload_libraries=pg_cron -c cron.database_name={dbname}",
    )


def create_database(proc, dbname: str) -> str:
    """A new, empty database in a pytest-postgresql cluster; its URL."""
    import psycopg

    admin = f"host={proc.host} port={proc.port} user={proc.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {dbname}")
    return f"postgresql://{proc.user}@{proc.host}:{proc.port}/{dbname}"


def clone_repo(dst: Path) -> Path:
    """A clone of HEAD at dst with the working tree's scripts/build, every
    migration frozen (as on main): where the build's tests change sources."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dst)], check=True)
    shutil.copy(ROOT / "scripts" / "build", dst / "scripts" / "build")
    subprocess.run(["python3", "scripts/build", "--freeze"], cwd=dst, check=True, capture_output=True)
    return dst


def schema_snapshot_tool():
    """scripts/schema_snapshot.py, imported from its path (it is a script, not a module of bayes_dev)."""
    spec = importlib.util.spec_from_file_location("schema_snapshot", ROOT / "scripts" / "schema_snapshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def new_player(conn) -> uuid.UUID:
    """A real auth.users row, as Supabase Auth would create at sign-up."""
    user_id = uuid.uuid4()
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
    return user_id


def stack_env() -> dict[str, str]:
    """KEY=VALUE lines of `scripts/stack env` (same BAYES_* variables as the caller)."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "env"], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def partitioned_stack_env() -> dict[str, str]:
    """`scripts/stack env` of the partitioned test stack that scripts/test starts
    (BAYES_PARTITIONED_STACK_DIR and ports), and under the key PARTITIONS the list of
    the partitions' URLs (PARTITION_URLS, comma-separated in the env output)."""
    names = ("STACK_DIR", "API_PORT", "DB_PORT", "REST_PORT")
    missing = [f"BAYES_PARTITIONED_{n}" for n in names if not os.environ.get(f"BAYES_PARTITIONED_{n}")]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not set: scripts/test starts the partitioned stack")
    env = dict(os.environ)
    env.update({f"BAYES_{n}": os.environ[f"BAYES_PARTITIONED_{n}"] for n in names})
    env.pop("BAYES_PARTITION_PORT", None)
    out = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "env"], capture_output=True, text=True, check=True, env=env
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if not values.get("PARTITION_URLS"):
        raise RuntimeError(f"the stack in {env['BAYES_STACK_DIR']} is not partitioned")
    values["PARTITIONS"] = values["PARTITION_URLS"].split(",")
    return values


def player_jwt(secret: str, user_id: uuid.UUID, ttl_s: int = 3600) -> str:
    """A player's access token, signed with the project's JWT secret as Supabase Auth signs it."""
    now = int(time.time())
    claims = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")


def act_as(conn, role: str, user_id=None) -> None:
    """Switch this transaction to an API role, with the JWT claims PostgREST sets."""
    claims = {"role": role} if user_id is None else {"role": role, "sub": str(user_id)}
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
    conn.execute(f"set local role {role}")


class Client:
    """A supabase-py client that also remembers the HTTP status of its last response."""

    def __init__(self, url: str, key: str, bearer: str | None = None):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        self.sb = create_client(url, key, options=ClientOptions(headers=headers))
        self.status: int | None = None
        self.sb.postgrest.session.event_hooks["response"].append(self._remember)

    def _remember(self, response) -> None:
        self.status = response.status_code

    def rpc(self, fn: str, params: dict):
        return self.sb.rpc(fn, params).execute()

    def table(self, name: str):
        return self.sb.table(name)
