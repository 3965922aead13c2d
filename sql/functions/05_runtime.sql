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
import marshal
import sys


def module_filename(name, sha256):
    # The file name of the module's code (tracebacks): bayes.py_module_compile
    # writes the same one.
    return "<bayes_engine %s %s>" % (name, sha256[:16])


# The compiled code of a row when the Python that compiled it is this one
# (the same bytecode magic number; marshal of a code object cannot be read by
# another version), else its source: unmarshalling the modules a message
# imports takes about 0.5 ms, compiling them about 12 ms.
magic = importlib._bootstrap_external.MAGIC_NUMBER.hex()
rows = plpy.execute(
    "select m.name, case when m.code_magic = '\\x%s'::bytea then m.code end as code,"
    " case when m.code_magic = '\\x%s'::bytea then null else m.source end as source,"
    " m.sha256, bayes.py_build() as build from bayes.py_module as m order by m.name" % (magic, magic)
)
if not rows:
    plpy.error("the bayes_engine code is not installed", sqlstate="55000",
               hint="bayes.py_module is empty: apply the functions migrations (scripts/build, supabase db push).")
build = rows[0]["build"]
modules = {row["name"]: row for row in rows}
packages = {name for name in modules if any(other.startswith(name + ".") for other in modules)}


class BayesEngineImporter:
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in modules:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin="bayes.py_module",
                                              is_package=fullname in packages)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        row = modules[module.__name__]
        if row["code"] is not None:
            code = marshal.loads(row["code"])
        else:
            code = compile(row["source"], module_filename(row["name"], row["sha256"]), "exec", dont_inherit=True)
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

-- Each module is compiled when it is written, by the database server's
-- Python, so that a fresh backend unmarshals its code instead of compiling
-- the source (bayes.py_load). A module that does not compile is refused
-- (22023) instead of failing every backend's first call.
create or replace function bayes.py_module_compile()
returns trigger
language plpython3u
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
import importlib.util
import marshal

new = TD["new"]
# The file name bayes.py_load gives a module it compiles itself.
filename = "<bayes_engine %s %s>" % (new["name"], new["sha256"][:16])
try:
    code = compile(new["source"], filename, "exec", dont_inherit=True)
except (SyntaxError, ValueError) as exc:
    plpy.error("module %s does not compile: %s" % (new["name"], exc), sqlstate="22023",
               hint="bayes.py_module holds the sources of scripts/build; fix the module and build again.")
new["code"] = marshal.dumps(code)
new["code_magic"] = importlib.util.MAGIC_NUMBER
return "MODIFY"
$$;

comment on function bayes.py_module_compile is
'Trigger py_module_compile of bayes.py_module: compiles the written source with the database server''s Python into code (marshal) and code_magic, or refuses a module that does not compile (22023).';
revoke all on function bayes.py_module_compile from public;

-- Any update, not only of source: the code a backend runs is always the
-- compiled source, whatever column a statement writes.
create or replace trigger py_module_compile
before insert or update on bayes.py_module
for each row execute function bayes.py_module_compile();

-- Rows written before the trigger existed: compiled here, once.
update bayes.py_module set source = source
where code is null;

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
