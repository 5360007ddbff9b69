-- Row-level security on the migration ledger too, like every other table the project
-- creates (Supabase's REST API would otherwise list it). The ledger is created by
-- `python -m jobs migrate` itself before any migration runs, so it exists here.
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;
