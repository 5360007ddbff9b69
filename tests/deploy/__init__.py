"""The production artefacts: image files, compose, systemd units, Prometheus rules."""
