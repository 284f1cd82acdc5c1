"""One exception type for every user-facing failure.

Anything a user can cause (bad path, corrupt wav, busy port, malformed budgets file) raises
HarnessError with a one-line message naming what and where; the CLI prints it as
``error: <message>`` and exits 2, and the pytest plugin turns it into a failed test.
"""


class HarnessError(Exception):
    """A user-facing error whose message is one line that says what went wrong and where."""
