"""Jobs: one module per job, each with ``run(..., now=...)`` and a thin CLI ``main``."""
