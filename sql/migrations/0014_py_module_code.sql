-- Issue 15: a fresh backend's first message without compiling the package.
-- Compiling the modules a message imports from their source cost about 12 ms
-- of a fresh backend's first call (pg_cron jobs and new pooled connections
-- pay it); loading the same code objects with marshal costs about 0.5 ms.
-- Each row keeps its module compiled, by the Python of the database server
-- (trigger bayes.py_module_compile, sql/functions/05_runtime.sql), with that
-- Python's bytecode magic number: bayes.py_load() uses the code only when the
-- magic number is its own (another Python version compiles the source, as
-- before), so the source stays the one truth.

alter table bayes.py_module
add column code bytea,
add column code_magic bytea;

comment on column bayes.py_module.code is
'The module''s source compiled by the database server''s Python (marshal of its code object), written by the trigger py_module_compile; null until that trigger ran for the row.';
comment on column bayes.py_module.code_magic is
'The bytecode magic number of the Python that compiled code: bayes.py_load() uses code only when it equals its own.';
