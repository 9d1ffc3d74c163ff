"""The one exception type users see: it names the input and says what to do."""

from __future__ import annotations


class CotlensError(RuntimeError):
    """A user-facing error: bad input, missing package, failed integrity check."""

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}\n  -> {fix}" if fix else what)
