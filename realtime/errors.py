"""The one exception type a user sees: ``gapfill: <message>``, exit status 2."""


class GapfillError(Exception):
    """A problem the user can act on; the message is one line, without the ``gapfill:`` prefix."""
