class SemhilError(Exception):
    """An error the user can act on. The CLI prints its message on one line and exits non-zero."""
