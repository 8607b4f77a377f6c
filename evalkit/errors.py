"""User-facing errors: each one is printed as a single line, never as a traceback."""


class EvalkitError(Exception):
    """A mistake the user can fix (bad suite, bad flag, unreachable server)."""


class SuiteError(EvalkitError):
    """A suite file that does not follow the contract; the message names file, case and field."""

    def __init__(self, path: str, case_id: str | None, field: str, problem: str):
        self.path, self.case_id, self.field, self.problem = path, case_id, field, problem
        where = f"{path}: case {case_id!r}" if case_id else f"{path}"
        super().__init__(f"{where}: field {field!r}: {problem}")


class KeyRefused(EvalkitError):
    """The server refused the first request's credentials (HTTP 401/403): the run stops before it
    measures anything, rather than record every sample as the same error."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGINT, SIGTERM) after saving what it had; exit 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
