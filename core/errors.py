"""Errors that carry a message meant for a person, not a traceback."""


class MonitorError(Exception):
    """Base class: str(error) is one readable line."""


class ConfigError(MonitorError):
    """Bad configuration or usage: a wrong setting, an unreachable database. Exit code 2."""


class JobFailed(MonitorError):
    """A job ran but could not finish its work. Exit code 1."""


class JobBusy(MonitorError):
    """Another run of the same job holds its lock; nothing was done."""


# Exit codes of every command (public contract), declared once: the CLI returns them and the
# dashboard's background runs read them.
EXIT_OK = 0  # done
EXIT_FAILED = 1  # the job failed
EXIT_USAGE = 2  # bad usage or configuration
EXIT_NEEDS_PERSON = 3  # done, but something needs a person
