"""Progress for long work: a tqdm bar on a terminal, plain log lines elsewhere.

A bar redrawn with carriage returns floods a log file, a pipe or a batch job's
output with thousands of fragments. Where stderr is not a terminal (or
``LOOKLISTEN_PROGRESS=lines``), :func:`progress_bar` writes whole lines
instead: none for work done within :data:`LINE_DELAY_SECONDS` (one file
embedded, a small folder scanned), else one when the work has gone on that
long, then one every :data:`LINE_EVERY_FRACTION` of it or every
:data:`LINE_EVERY_SECONDS`, whichever comes first, and one at the end, e.g.::

    train: 120/400 steps (30%) [00:41<01:36, 2.91 steps/s, loss=0.612, acc=0.688]

``LOOKLISTEN_PROGRESS=bar`` forces the bar (a terminal multiplexer that is
not seen as a terminal).
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.auto import tqdm

#: A plain line every tenth of the work, and at least once a minute; none for work
#: that ends within a few seconds.
LINE_EVERY_FRACTION = 0.1
LINE_EVERY_SECONDS = 60.0
LINE_DELAY_SECONDS = 3.0


class _Lines(tqdm):
    """tqdm that prints whole lines, at most every tenth of the work or minute."""

    def __init__(self, *args, **kwargs):
        self._last_n, self._last_t = None, 0.0
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        total, now = self.total, time.time()
        if self._last_n is None and now - getattr(self, "start_t", now) < self.delay:
            return True  # short work leaves no line
        due = (
            self._last_n is None  # the start
            or now - self._last_t >= LINE_EVERY_SECONDS
            or (total and self.n - self._last_n >= LINE_EVERY_FRACTION * total)
            or (total and self.n >= total and self._last_n < total)  # the end
        )
        if self.disable or not due or (self._last_n == self.n and self.n):
            return True
        self._last_n, self._last_t = self.n, now
        self.fp.write((msg or self.__str__()) + "\n")
        self.fp.flush()
        return True

    def clear(self, nolock=False):
        pass  # a line once written stays (tqdm.write clears bars with carriage returns)

    def moveto(self, n):
        pass

    def close(self):
        if getattr(self, "disable", True):
            return
        if self._last_n is not None and self._last_n != self.n:  # the last line, if any
            self._last_t, self._last_n = 0.0, -1
            self.display()
        self.disable = True  # tqdm's own close would end with a blank line
        self._decr_instances(self)


def _lines_wanted(file) -> bool:
    mode = os.environ.get("LOOKLISTEN_PROGRESS", "auto")
    if mode in ("bar", "lines"):
        return mode == "lines"
    return not getattr(file, "isatty", lambda: False)()


def progress_bar(iterable=None, *, desc: str, unit: str, disable: bool = False, **kwargs):
    """A progress bar (tqdm's interface: ``update``, ``set_postfix``, ``write``, iteration).

    On a terminal a tqdm bar; elsewhere plain lines (see the module docstring).
    ``desc`` names the work (``"decode training videos"``), ``unit`` what is counted.
    """
    file = kwargs.pop("file", None) or sys.stderr
    if disable or not _lines_wanted(file):
        return tqdm(iterable, desc=desc, unit=unit, disable=disable, file=file, **kwargs)
    total = kwargs.get("total")
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if total:
        fmt = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
    else:
        fmt = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}{postfix}]"
    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("delay", LINE_DELAY_SECONDS)
    return _Lines(iterable, desc=desc, unit=unit, file=file, bar_format=fmt, **kwargs)
