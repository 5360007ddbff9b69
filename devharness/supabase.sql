-- A PostgreSQL server set up the way a Supabase project's is (devharness/supabase.py), from
-- the facts of Supabase's published init SQL (github.com/supabase/postgres,
-- migrations/db/init-scripts/00000000000000-initial-schema.sql and 00000000000003-post-setup.sql)
-- and the role attributes a hosted project's `pg_dumpall --roles-only` shows. Written here,
-- not copied; only what decides who may read and call what.

-- name: setup_superuser
-- A superuser for one step only: the bootstrap superuser cannot rename itself.
CREATE ROLE webhook_monitor_setup LOGIN SUPERUSER

-- name: bootstrap_becomes_supabase_admin
-- On Supabase the bootstrap superuser is supabase_admin; `postgres` is another role.
ALTER ROLE postgres RENAME TO supabase_admin

-- name: drop_setup_superuser
-- The one-step superuser goes again.
DROP ROLE webhook_monitor_setup

-- name: supabase_roles
-- The cluster's roles. `postgres`, the role a project's owner (and `jobs migrate`) logs in
-- as, is no superuser: it may create roles and databases and bypasses row-level security.
-- The API roles: PostgREST logs in as authenticator and switches to anon (the public anon
-- key), authenticated (a signed-in user) or service_role (the secret key, BYPASSRLS).
DO $$
BEGIN
    CREATE ROLE postgres LOGIN NOSUPERUSER INHERIT CREATEROLE CREATEDB REPLICATION BYPASSRLS;
    CREATE ROLE anon NOLOGIN NOINHERIT;
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    CREATE ROLE authenticator LOGIN NOINHERIT;
    GRANT anon, authenticated, service_role TO authenticator;
    GRANT anon, authenticated, service_role TO postgres;
    ALTER ROLE anon SET statement_timeout = '3s';
    ALTER ROLE authenticated SET statement_timeout = '8s';
    ALTER ROLE postgres SET search_path TO "$user", public, extensions;
END
$$

-- name: supabase_database
-- One database as a project's `postgres` database: owned by postgres (so public, owned by
-- pg_database_owner, is postgres's), an extensions schema, the API roles' usage of both,
-- and the default privileges that give the API roles every new table, function and sequence
-- of public, whether supabase_admin or postgres creates it.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I OWNER TO postgres', current_database());
    CREATE SCHEMA IF NOT EXISTS extensions;
    GRANT USAGE ON SCHEMA public TO postgres, anon, authenticated, service_role;
    GRANT USAGE ON SCHEMA extensions TO postgres, anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
        GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
        GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
        GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
        GRANT ALL ON TABLES TO anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
        GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
        GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
    -- Supabase creates pgcrypto and uuid-ossp in extensions; the embedded server has neither
    -- (gen_random_uuid, which the schema uses, is in core PostgreSQL).
END
$$
