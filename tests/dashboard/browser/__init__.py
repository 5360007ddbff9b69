"""The dashboard in Debian's Chromium under ``python -m dashboard`` (marker ``browser``)."""
