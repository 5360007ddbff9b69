"""Pieces every page shares: background jobs, charts, links, table columns and safe text."""
