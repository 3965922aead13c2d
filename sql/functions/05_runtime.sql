-- The Python runtime of the engine. The bayes_engine package lives in the
-- table bayes.py_module (written by the functions migrations); each backend
-- loads it on its first call of an engine function (bayes.py_load), and
-- loads it again when the code changed since (bayes_engine.pg compares its
-- copy with bayes.py_build() whenever bayes.params_revision moves, which
-- every change of bayes.py_module does). Every PL/Python function of the
-- engine calls the package through the two lines that scripts/build writes
-- for `@bayes_engine <call>`.

create or replace function bayes.py_build()
returns text
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select left(
        encode(sha256(convert_to(string_agg(m.name || ' ' || m.sha256, E'\n' order by m.name), 'UTF8')), 'hex'),
        16
    )
    from bayes.py_module as m
$$;

comment on function bayes.py_build is
'Build id of the bayes_engine code in bayes.py_module: the first 16 hex digits of the SHA-256 over its modules'' names and hashes.';
revoke all on function bayes.py_build from public;
grant execute on function bayes.py_build to authenticated, service_role;

create or replace function bayes.py_load()
returns text
language plpython3u
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
# The package is served from the rows of bayes.py_module by an import hook,
# so nothing is copied onto the database host: the migrations alone deploy
# the code. A finder and loader by protocol, not by importlib.abc: that
# module pulls in importlib.resources and typing, about 12 ms of a fresh
# backend's first call.
import importlib.machinery
import sys

rows = plpy.execute(
    "select m.name, m.source, bayes.py_build() as build from bayes.py_module as m order by m.name"
)
if not rows:
    plpy.error("the bayes_engine code is not installed", sqlstate="55000",
               hint="bayes.py_module is empty: apply the functions migrations (scripts/build, supabase db push).")
build = rows[0]["build"]
sources = {row["name"]: row["source"] for row in rows}
packages = {name for name in sources if any(other.startswith(name + ".") for other in sources)}


class BayesEngineImporter:
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in sources:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin="bayes.py_module",
                                              is_package=fullname in packages)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__
        code = compile(sources[name], "<bayes_engine %s %s>" % (build, name), "exec")
        module.__build__ = build
        exec(code, module.__dict__)


sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "BayesEngineImporter"]
for name in [n for n in sys.modules if n == "bayes_engine" or n.startswith("bayes_engine.")]:
    del sys.modules[name]
sys.meta_path.insert(0, BayesEngineImporter())
GD["bayes_engine_build"] = build
return build
$$;

comment on function bayes.py_load is
'Installs the bayes_engine package of bayes.py_module into this backend''s interpreter (replacing an older copy) and returns its build id; called by the engine''s PL/Python functions on their first call in a backend and after the code changed.';
revoke all on function bayes.py_load from public;
grant execute on function bayes.py_load to authenticated, service_role;

create or replace function bayes.loaded_build()
returns text
language plpython3u
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
return GD.get('bayes_engine_build')
$$;

comment on function bayes.loaded_build is
'Build id of the bayes_engine code loaded in this backend (see bayes.py_build()), or null before its first call.';
revoke all on function bayes.loaded_build from public;
grant execute on function bayes.loaded_build to service_role;
