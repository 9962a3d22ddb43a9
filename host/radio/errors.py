class RadioError(Exception):
    """A channel, pilot or link description the user gave that cannot be used; the message says how to fix it.
    The CLI prints it on one line and exits non-zero, as it does a SemhilError."""
