-- Statements of the engine factories (core/db.py).

-- name: ping
-- One round trip: is the database there, and does it let us in?
SELECT 1

-- name: jobs_session
-- Run once on every new connection of the jobs' engines, outside any transaction, so it lasts
-- the session: no JIT compilation (the dashboard's sessions say the same below). Our statements
-- are short, but PostgreSQL's cost estimates for the rollup-based plans pass jit_above_cost,
-- and compiling then costs far more than running: on a PostgreSQL 15 with LLVM JIT (Debian's,
-- Supabase's, most managed servers') and 10M events, the Overview's event_kpis took 2,239 ms
-- with JIT and 127 ms without.
SELECT set_config('jit', 'off', false)

-- name: dashboard_session
-- Run once on every new dashboard connection, outside any transaction, so the settings last
-- the session: every transaction read-only unless it says otherwise, no statement longer
-- than :timeout_ms milliseconds, no JIT compilation, and a name to tell the dashboard apart
-- in pg_stat_activity.
-- Every statement is planned for its parameters (plan_cache_mode): psycopg prepares a
-- statement run five times on a connection, and PostgreSQL may then switch to a generic plan
-- that ignores the values; the events search (queries/events.sql) is planned for its text
-- (its functions are immutable), and a generic plan of it took 76 s at 10M events instead of
-- 0.8 s.
SELECT set_config('default_transaction_read_only', 'on', false),
       set_config('jit', 'off', false),
       set_config('plan_cache_mode', 'force_custom_plan', false),
       set_config('statement_timeout', CAST(:timeout_ms AS text), false),
       set_config('application_name', 'webhook-monitor-dashboard', false)
