"""Jobs: ``python -m jobs <command>``, in feature packages (reconcile, cleanup, schedule, alerting,
health, replay, admin), each job a module with ``run(..., now=...)`` and a thin CLI ``main``."""
