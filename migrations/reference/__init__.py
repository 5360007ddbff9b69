"""The app's own tables that a real deployment already has (skipped with ``migrate --without-reference``)."""
