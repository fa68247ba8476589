"""Old call forms keep working for a while, with a warning that says the new one."""

from __future__ import annotations

import warnings


class LooklistenDeprecationWarning(FutureWarning):
    """A call form that a later looklisten will refuse (shown by default, unlike
    ``DeprecationWarning``: the people calling the library are its users)."""


def deprecated(message: str, stacklevel: int = 3) -> None:
    """Warn that ``message``'s old form is deprecated (``stacklevel``: the caller's caller)."""
    warnings.warn(message, LooklistenDeprecationWarning, stacklevel=stacklevel)
