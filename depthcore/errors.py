"""Error types whose message is meant for the user, not a traceback reader."""


class DepthcoreError(Exception):
    """An error with a complete, user-readable message (file and problem named)."""


class DataError(DepthcoreError, ValueError):
    """Bad input data: a missing, truncated or malformed file, or a wrong-shaped array."""


class CheckpointError(DepthcoreError, ValueError):
    """A checkpoint that cannot be loaded safely or does not match its config."""
