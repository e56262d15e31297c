"""Progress on stderr through tqdm (as ``mobilenas train``): a bar rewritten in place on a
terminal; elsewhere (a log file, a pipe) one plain line per update, so logs keep every figure.
tqdm computes the ETA from the rate since this session started, so a resumed job's earlier
work does not inflate the rate."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

BAR_FORMAT = "{desc} |{bar:12}| elapsed {elapsed} | ETA {remaining}"
LINE_FORMAT = "{desc} | elapsed {elapsed} | ETA {remaining}"


class ProgressBar:
    """``update(done, total, text)``: ``done`` of ``total`` units finished (any unit with a
    steady rate: trials, milliseconds cut), ``text`` the figures shown before the timing. The
    session's clock starts at construction or at :meth:`begin`."""

    def __init__(self, tty: bool | None = None) -> None:
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.bar: tqdm | None = None
        self.initial: float | None = None
        self.started = time.monotonic()

    def begin(self, done: float) -> None:
        """This session's work starts now from ``done`` (only the first call counts)."""
        if self.initial is None:
            self.initial, self.started = done, time.monotonic()

    def update(self, done: float, total: float, text: str, *, initial: float | None = None,
               elapsed: float | None = None) -> None:
        """``initial``/``elapsed``: where this session started and its time so far, when the
        job knows them better than this bar (default: the first update, this bar's clock)."""
        if self.initial is None:
            self.initial = done if initial is None else initial
        elapsed = time.monotonic() - self.started if elapsed is None else elapsed
        if not self.tty:
            print(tqdm.format_meter(done, total, elapsed, prefix=text, bar_format=LINE_FORMAT, initial=self.initial),
                  file=sys.stderr, flush=True)
            return
        if self.bar is None:
            self.bar = tqdm(total=total, initial=self.initial, desc=text, file=sys.stderr, bar_format=BAR_FORMAT,
                            dynamic_ncols=True, smoothing=0)
        self.bar.start_t = time.time() - elapsed  # tqdm's own clock is time.time
        self.bar.total, self.bar.n = total, done
        self.bar.set_description_str(text)

    @staticmethod
    def write(message: str) -> None:
        """A message line that does not break the bar."""
        tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
