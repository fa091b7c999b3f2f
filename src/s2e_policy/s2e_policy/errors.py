"""The one user-facing error type of the stack.

Every error caused by bad input (a corrupt file, a missing config key, a wrong image
encoding, NaN odometry) derives from :class:`S2EError` and says which file or field is wrong
and what was expected. The ``s2e`` command line prints these as one line (exit status 2)
instead of a traceback.
"""

from __future__ import annotations


class S2EError(ValueError):
    """Bad input: the message names the file or field and what was expected."""
