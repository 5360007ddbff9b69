"""The Overview page: are payments being processed right now."""
