"""Shared plumbing: settings, database engines, the embedded PostgreSQL."""
