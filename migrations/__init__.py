"""Plain .sql migrations, applied in file-name order by ``python -m jobs migrate``.

The files are ordinary PostgreSQL so they can be copied into a Supabase project's
``supabase/migrations/``. ``reference/`` holds the app's own ``registrations`` schema, which a
real deployment already has and can skip with ``migrate --without-reference``.
"""
