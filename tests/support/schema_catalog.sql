-- The schema of a database as rows to compare (tests/support/schema_catalog.py): what two ways of
-- migrating must agree on. Objects of extensions are left out.

-- name: functions
-- Every function of public: definition, settings, grants, security.
SELECT p.oid::regprocedure::text AS signature, pg_get_functiondef(p.oid) AS definition,
       p.proconfig AS config, p.proacl::text AS acl, p.prosecdef AS security_definer
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1

-- name: columns
-- Every column of every table and view of public, in order, with type, default and generation.
SELECT c.relname AS relation, c.relkind::text AS kind, a.attnum AS position, a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
       pg_get_expr(ad.adbin, ad.adrelid) AS default_value, a.attgenerated::text AS generated,
       a.attidentity::text AS identity, col_description(c.oid, a.attnum) AS comment
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'p')
ORDER BY 1, 3

-- name: relations
-- Every table and view: row-level security, grants, and a view's query.
SELECT c.relname AS relation, c.relkind::text AS kind, c.relrowsecurity AS row_security,
       c.relacl::text AS acl, CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END AS view_query
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'p')
ORDER BY 1

-- name: indexes
-- Every index of public, as CREATE INDEX.
SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1

-- name: constraints
-- Every constraint of a table of public, as its definition.
SELECT conrelid::regclass::text AS relation, conname AS name, pg_get_constraintdef(oid) AS definition,
       convalidated AS validated
FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2

-- name: triggers
-- Every user trigger of public, as CREATE TRIGGER, with whether it is enabled.
SELECT tgrelid::regclass::text AS relation, tgname AS name, pg_get_triggerdef(oid) AS definition,
       tgenabled::text AS enabled
FROM pg_trigger
WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
ORDER BY 1, 2

-- name: policies
-- Every row-level security policy of public.
SELECT tablename AS relation, policyname AS name, roles::text AS roles, cmd, qual, with_check
FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2
