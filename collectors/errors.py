"""vmcore-save's one error: why the run cannot finish, as one line for the user (exit status 1)."""


class Failure(Exception):
    """Why the run cannot finish: one line for the user, exit status 1."""
