-- Bulk decay (issue 4): its pg_cron job. This migration is idempotent: it
-- may be run again (to change the schedule) and leaves exactly one job.

-------------------------------------------------------------------------------
-- The pg_cron job: `call bayes.run_decay()` every 15 minutes by default.
-- The schedule is a parameter: set `bayes.decay_schedule` (cron syntax) on
-- the database before this migration runs, or call
-- bayes.schedule_decay('<cron schedule>') at any time later. cron.schedule
-- updates the job of the same name, so re-running this leaves exactly one.
-------------------------------------------------------------------------------
select cron.schedule(
    'bayes-run-decay',
    coalesce(nullif(current_setting('bayes.decay_schedule', true), ''), '*/15 * * * *'),
    'call bayes.run_decay()'
);
