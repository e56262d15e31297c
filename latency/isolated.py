"""Whole models timed in a fresh process, so that a figure does not depend on what the
measuring process did before.

A paired ratio is not independent of the process it is taken in. In ``mobilenas run`` under
the load injector, the process that had trained a supernet, run a search and NetAdapt read a
found model at 0.953x MobileNetV3-Small (twice), while a fresh process started from it at the
same moment read the same pair at 0.999x (twice); over five demo runs, the pipeline's readings
after NetAdapt were 4-7% under those of fresh processes, and NetAdapt's readings inside the loop
1-5% under, so models the pipeline put at 0.94x their budget ran at 0.99x-1.03x of it in a fresh
process. A model's user runs it in a process of their own, so that is the figure that counts:
:func:`measure_in_child` runs :func:`latency.paired.measure_paired` in a child interpreter
(``python -m latency.isolated_child``), the models passed as ONNX files, and returns its
:class:`~latency.paired.PairedRatio` list. Fresh processes agree with each other within about
1% on these pairs. The child lives as long as the calling process (:class:`MeasuringChild`) and
does nothing but measure.

Only ONNX Runtime CPU measurers (float and int8) are moved. A device command already runs in
its own process; torch eager (CPU or CUDA) times modules in the calling process, as before.
``MOBILENAS_MEASURE_IN_PROCESS=1`` keeps every measurement in the calling process.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from latency.measurers import Measurer, ModelLike, OrtMeasurer, onnx_bytes_of
from latency.paired import PairedRatio, measure_paired
from latency.quantized import OrtInt8Measurer

IN_PROCESS_ENV = "MOBILENAS_MEASURE_IN_PROCESS"
MOVABLE = (OrtMeasurer, OrtInt8Measurer)
"""Measurer classes (exactly these; not subclasses) whose measurements move to a child: ONNX
models travel as files."""


class ChildMeasurementError(RuntimeError):
    """The measuring child process failed; the message carries its error."""


def can_isolate(measurer: Measurer, models: Sequence[Any] | None = None) -> bool:
    """Whether ``measurer``'s whole-model figures can be taken in a child: an ONNX Runtime CPU
    measurer of :data:`MOVABLE` with models given as ONNX (bytes or a file) or not at all, and
    not switched off by :data:`IN_PROCESS_ENV`."""
    if os.environ.get(IN_PROCESS_ENV, "") not in ("", "0"):
        return False
    if type(measurer) not in MOVABLE:
        return False
    return models is None or all(isinstance(m, (bytes, bytearray, str, Path)) for m in models)


def write_job(folder: Path, measurer: Measurer, models: Sequence[ModelLike], shapes: Sequence[tuple[int, ...]],
              reference: ModelLike, reference_shape: tuple[int, ...], options: dict[str, Any]) -> None:
    """The child's instructions in ``folder``: ``job.json``, ``reference.onnx`` and one
    ``model-N.onnx`` per model."""
    (folder / "reference.onnx").write_bytes(onnx_bytes_of(reference, reference_shape))
    for index, (model, shape) in enumerate(zip(models, shapes)):
        (folder / f"model-{index}.onnx").write_bytes(onnx_bytes_of(model, shape))
    job = {"measurer": measurer.settings_dict(), "shapes": [list(s) for s in shapes],
           "reference_shape": list(reference_shape), "options": options}
    (folder / "job.json").write_text(json.dumps(job))


class MeasuringChild:
    """One long-lived measuring process per calling process, started on first use: it only ever
    measures (as a ``latency build`` process does), so it stays as fresh as a new one and each
    measurement costs no interpreter start. Jobs are folders; the child reads one folder path a
    line on its stdin and answers ``ok`` or ``error`` a line on its stdout. It ends when its
    stdin closes, which happens when this process ends, however it ends."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.owner = os.getpid()
        self.lock = threading.Lock()

    def run(self, folder: Path) -> None:
        """Measure the job in ``folder``; raises :class:`ChildMeasurementError` when it fails."""
        with self.lock:
            self._ensure_started()
            try:
                self.process.stdin.write(f"{folder}\n")
                self.process.stdin.flush()
                answer = self._answer_for(folder)
            except (BrokenPipeError, OSError):
                answer = ""
        if answer == "ok":
            return
        error = folder / "error.txt"
        why = error.read_text().strip() if error.is_file() else self._exit_reason()
        raise ChildMeasurementError(f"the measuring process failed: {why} (set {IN_PROCESS_ENV}=1 to measure in "
                                    "this process)")

    def _ensure_started(self) -> None:
        if self.owner != os.getpid():  # a forked copy of this object: the pipes are the parent's
            self.process, self.owner = None, os.getpid()
        if self.process is None or self.process.poll() is not None:
            self.log = tempfile.TemporaryFile(mode="w+")
            # a session of its own: a Ctrl-C at the terminal asks the job to stop at its next safe
            # point (storage.runfolder) and must not kill the measurement it is waiting for
            self.process = subprocess.Popen([sys.executable, "-m", "latency.isolated_child"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=self.log, text=True, start_new_session=True)

    def _answer_for(self, folder: Path) -> str:
        """The child's answer for ``folder`` (``ok``/``error``; empty when it ended), skipping the
        answer to a job whose caller was interrupted while waiting."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                return ""
            answer, _, about = line.rstrip("\n").partition(" ")
            if about == str(folder):
                return answer

    def _exit_reason(self) -> str:
        """Why the child ended: its last line on stderr, else its exit status."""
        status = self.process.wait()
        self.log.seek(0)
        lines = [line.strip() for line in self.log.read().splitlines() if line.strip()]
        return lines[-1] if lines else f"it ended with exit status {status}"

    def close(self) -> None:
        if self.process is not None and self.owner == os.getpid() and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


CHILD = MeasuringChild()
atexit.register(CHILD.close)


def measure_in_child(measurer: Measurer, models: Sequence[ModelLike], shapes: Sequence[tuple[int, ...]],
                     reference: ModelLike, reference_shape: tuple[int, ...], **options: Any) -> list[PairedRatio]:
    """:func:`latency.paired.measure_paired` with these arguments (models as ONNX bytes or
    files), run in :data:`CHILD`."""
    if len(models) != len(shapes):
        raise ValueError(f"{len(models)} models but {len(shapes)} input shapes")
    with tempfile.TemporaryDirectory(prefix="mobilenas-measure-") as temp:
        folder = Path(temp)
        write_job(folder, measurer, models, shapes, reference, reference_shape, options)
        CHILD.run(folder)
        return [PairedRatio(**record) for record in json.loads((folder / "result.json").read_text())]


def measure_where_fresh(measurer: Measurer, models: Sequence[ModelLike], shapes: Sequence[tuple[int, ...]],
                        reference: ModelLike, reference_shape: tuple[int, ...], *, isolate: bool = True,
                        **options: Any) -> list[PairedRatio]:
    """:func:`latency.paired.measure_paired`, in :data:`CHILD` where :func:`can_isolate` allows
    (and ``isolate``), else in this process."""
    measure = measure_in_child if isolate and can_isolate(measurer, models) else measure_paired
    return measure(measurer, models, shapes, reference, reference_shape, **options)
