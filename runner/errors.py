"""User-facing errors: each is printed as one line and ends the job with a non-zero exit, no traceback."""


class RunnerError(Exception):
    """A problem the user can fix: bad config, missing data, a refused checkpoint, no tracking server."""

    exit_code = 2


class ConfigError(RunnerError):
    pass


class DataError(RunnerError):
    pass


class CheckpointError(RunnerError):
    pass


class TrackingError(RunnerError):
    pass
