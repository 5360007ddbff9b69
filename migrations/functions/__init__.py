"""Function files: applied by ``python -m jobs migrate`` after the numbered migrations, and again
whenever their checksum changes (see migrations/__init__.py)."""
