"""The schema as plain PostgreSQL files, applied by ``python -m jobs migrate`` (jobs/admin/migrate.py).

- ``reference/``: the app's own ``registrations`` table, which a real deployment already has
  and skips with ``migrate --without-reference``.
- ``NNNN_*.sql``: numbered migrations (tables, columns, indexes, constraints, data), applied
  once each in name order and never edited afterwards. ``0179_baseline.sql`` holds what
  0001-0175 built; new ones are numbered from 0180.
- ``functions/*.sql``: every SQL function, view and trigger once, in its current form with its
  settings and grants, applied after the numbered migrations and again whenever the file
  changes: a function is changed by editing its file.

On a new database every numbered migration runs before any function file, so a numbered
migration must not call, or create a trigger on, a function of the function files: the
trigger belongs in the function's file.

``migrate --export-supabase DIR`` writes them as timestamped files for ``supabase/migrations/``.
"""
