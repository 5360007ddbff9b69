"""The scripts: the demo launcher."""
