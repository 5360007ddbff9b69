"""Errors that carry a message meant for a person, not a traceback."""


class MonitorError(Exception):
    """Base class: str(error) is one readable line."""


class ConfigError(MonitorError):
    """Bad configuration or usage: a wrong setting, an unreachable database. Exit code 2."""


class JobFailed(MonitorError):
    """A job ran but could not finish its work. Exit code 1."""


class JobBusy(MonitorError):
    """Another run of the same job holds its lock; nothing was done."""
