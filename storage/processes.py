"""Processes a job started and must not leave behind (Ray's agents outlive a killed driver by
40+ s, FINDINGS.md): found by a folder their command lines carry, ended by id, never by name."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Sequence


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
