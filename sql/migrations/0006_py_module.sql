-- The Python of the engine as rows (issue 11): one row per module of the
-- bayes_engine package, written by the functions migrations that scripts/build
-- generates, read by bayes.py_load() into each backend's interpreter. A
-- migration now carries only the modules whose source changed.

create table bayes.py_module (
    name text primary key,
    source text not null,
    sha256 text not null,
    constraint py_module_name_in_package
    check (name = 'bayes_engine' or name like 'bayes\_engine.%'),
    constraint py_module_sha256_of_source
    check (sha256 = encode(sha256(convert_to(source, 'UTF8')), 'hex'))
);

comment on table bayes.py_module is
'Source of each module of the bayes_engine Python package (bayes_engine is the package itself), as deployed by the functions migrations; bayes.py_load() serves it to the interpreter of each backend.';
comment on column bayes.py_module.sha256 is
'SHA-256 of source (UTF-8, hex): what scripts/build compares to decide which modules a new migration carries.';

-- Every backend re-reads the parameters when bayes.params_revision moves; a
-- changed module moves it too, and a backend that sees a new revision
-- compares its copy of the code with bayes.py_build() (bayes_engine.pg).
create trigger py_module_bump_revision
after insert or update or delete or truncate on bayes.py_module
for each statement execute function bayes.bump_params_revision();

comment on table bayes.params_revision is
'One row: revision of the parameters (bayes.chapter_params, bayes.params) and of the code (bayes.py_module), bumped by a statement trigger on any change to them.';

-- The invoker of any engine function loads the code: every API role that may
-- call one reads the modules.
alter table bayes.py_module enable row level security;
create policy py_module_readable on bayes.py_module
for select to authenticated, service_role using (true);
revoke all on table bayes.py_module from public, anon, authenticated, service_role;
grant select on table bayes.py_module to authenticated, service_role;

-- What the functions migrations call to install a module: the hash is given
-- by the build and checked here, so a migration whose text was altered on the
-- way (line endings, an editor) fails instead of deploying other code.
create function bayes.install_py_module(p_name text, p_sha256 text, p_source text)
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if encode(sha256(convert_to(p_source, 'UTF8')), 'hex') <> p_sha256 then
        raise exception 'module % does not match its hash %', p_name, p_sha256
            using errcode = '22023', hint = 'Rebuild the migration with scripts/build; do not edit it.';
    end if;
    insert into bayes.py_module as m (name, source, sha256)
    values (p_name, p_source, p_sha256)
    on conflict (name) do update
    set source = excluded.source, sha256 = excluded.sha256
    where m.sha256 <> excluded.sha256;
end
$$;

comment on function bayes.install_py_module(text, text, text) is
'Installs (or replaces) the source of one bayes_engine module after checking its SHA-256; called by the generated functions migrations.';
revoke all on function bayes.install_py_module(text, text, text) from public;
