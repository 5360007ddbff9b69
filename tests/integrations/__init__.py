"""The Supabase Edge Function kit under Deno, and webhook conformance of every receiver."""
