"""Processes a job started and must not leave behind (Ray's agents outlived a killed driver by
40+ s): found by a folder their command lines carry, ended by id, never by name; and starting a
local cluster again when an overloaded machine was too slow for Ray's fixed startup timeout."""
from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Callable, Sequence

log = logging.getLogger(__name__)


def processes_using(folder: str | Path) -> list[int]:
    """Ids of this user's processes (other than this one) whose command line mentions ``folder``."""
    needle, found = str(folder).encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() and entry.stat().st_uid == os.getuid():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def end_processes_using(folders: Sequence[str | Path], grace_s: float = 5.0) -> int:
    """Wait up to ``grace_s`` for the processes of ``folders`` to exit, then end the rest by id
    (SIGTERM, then SIGKILL). Returns how many had to be ended."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(processes_using(f) for f in folders):
        time.sleep(0.25)
    ended = 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = sorted({pid for f in folders for pid in processes_using(f)})
        for pid in pids:
            try:
                os.kill(pid, sig)
                ended += sig == signal.SIGTERM
            except ProcessLookupError:
                pass
        if pids:
            time.sleep(1.0)
    return ended


STARTUP_TIMEOUT_MARK = "timed out during startup"
"""Ray's message when its raylet takes longer than its fixed 30 s to register (an overloaded machine)."""


def start_with_retries(start: Callable[[], None], clean_up: Callable[[], None], *, attempts: int = 3) -> None:
    """``start()``; when it fails because an overloaded machine was slow to start the local
    cluster, ``clean_up()`` and try again (``attempts`` in all): a slow moment is not an error."""
    for attempt in range(1, attempts + 1):
        try:
            start()
            return
        except Exception as exc:  # Ray raises a bare Exception here
            if STARTUP_TIMEOUT_MARK not in str(exc) or attempt == attempts:
                raise
            log.warning("the local Ray cluster was slow to start (attempt %d of %d): trying again", attempt, attempts)
            clean_up()
