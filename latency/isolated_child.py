"""The measuring child of :mod:`latency.isolated` (``python -m latency.isolated_child``): for
each job folder named on a line of its stdin, it reads ``job.json``, ``reference.onnx`` and the
``model-N.onnx`` files, measures with :func:`latency.paired.measure_paired`, writes ``result.json``
(or ``error.txt``) and answers ``ok FOLDER`` (or ``error FOLDER``) on a line of its stdout. It ends when its
stdin closes."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from latency.paired import measure_paired
from latency.registry import measurer_from_recorded


def run_job(folder: Path) -> None:
    """The child's side: read ``job.json``, measure in this process, write ``result.json``."""
    job = json.loads((folder / "job.json").read_text())
    shapes = [tuple(s) for s in job["shapes"]]
    models = [(folder / f"model-{i}.onnx").read_bytes() for i in range(len(shapes))]
    results = measure_paired(measurer_from_recorded(job["measurer"]), models, shapes,
                             (folder / "reference.onnx").read_bytes(), tuple(job["reference_shape"]), **job["options"])
    partial = folder / "result.json.part"
    partial.write_text(json.dumps([asdict(r) for r in results]))
    partial.replace(folder / "result.json")


def serve() -> None:
    """Answer job folders from stdin until it closes; anything else writing to stdout (a
    runtime's message) goes to stderr, so that stdout carries only the answers."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        folder = Path(line.strip())
        try:
            run_job(folder)
            answers.write(f"ok {folder}\n")
        except Exception as exc:  # reported to the caller, which raises it
            with contextlib.suppress(OSError):  # a caller that stopped waiting may have removed the folder
                (folder / "error.txt").write_text(f"{type(exc).__name__}: {exc}")
            answers.write(f"error {folder}\n")
        answers.flush()


if __name__ == "__main__":
    serve()
