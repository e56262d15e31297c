"""The reference models trained beside the final model, in a second process.

The final model and the references are trained with one recipe (MobileNetV3 section 6.1's
comparison at equal training), one after the other they are the longest stretch of a small run
after NetAdapt. The demo's models do not train faster on two threads than on one
(MobileNetV3-Small, 2 epochs of the embedded data on this 2-core machine kind: 8.5 s on one
thread, 8.7 s on two; two such trainings side by side, one thread each, took the time of one),
so with two workers the references train in a spawned process while the final model trains in
the pipeline's own, one thread each, and the two stages take about the time of the longer.

Nothing here changes what is trained: the same run folders (``references/<label>``), recipe
and seeds. The references stage reads back what the second process finished and resumes (in
the pipeline's process) whatever it did not: a kill, a Ctrl-C or a crash of either process
loses at most the steps since a training's last checkpoint. The second process stops at its
next step when the final model's training stops, and when the pipeline's process is gone.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from search_spaces.encoding import format_spec, parse_spec
from search_spaces.spec import ArchSpec
from training.config import TrainConfig
from training.datasets import default_resolution, load_dataset
from training.job import train_in

ReferenceJob = tuple[str, ArchSpec]
"""A reference to train: its folder under the run (``references/<label>``) and its spec."""


def _train_references(run_path: str, data_name: str, jobs: list[tuple[str, str]], recipe: TrainConfig,
                      stop: "multiprocessing.synchronize.Event", parent: int) -> None:
    """The second process: train ``jobs`` in order until done or asked to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pipeline's process asks it to stop
    data = load_dataset(data_name, resolution=default_resolution(data_name), split_seed=0)

    def should_stop() -> bool:
        return stop.is_set() or os.getppid() != parent

    for folder_name, spec in jobs:
        result = train_in(Path(run_path) / folder_name, parse_spec(spec), data, recipe, spec_name=Path(folder_name).name,
                          data_name=data_name, split_seed=0, should_stop=should_stop)
        if result is None:
            return


@contextmanager
def references_beside(run_path: Path, data_name: str, jobs: Sequence[ReferenceJob], recipe: TrainConfig,
                      say: Callable[[str], None], should_stop: Callable[[], bool]) -> Iterator[None]:
    """Train ``jobs`` in a spawned process while the body runs; on leaving, wait for it, asking
    it to stop when the body raised or ``should_stop`` (the pipeline's stop flag) says so. No
    jobs: the body alone."""
    if not jobs:
        yield
        return
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=_train_references, name="mobilenas-references", daemon=True,
                              args=(str(run_path), data_name, [(f, format_spec(s)) for f, s in jobs], recipe, stop,
                                    os.getpid()))
    process.start()
    say(f"references: training {', '.join(Path(f).name for f, _ in jobs)} beside the final model")
    try:
        yield
    except BaseException:
        stop.set()
        raise
    finally:
        while process.is_alive():
            if should_stop():
                stop.set()
            process.join(timeout=0.5)
        if process.exitcode != 0:
            say(f"references: the process training them beside the final model ended with exit code "
                f"{process.exitcode}; the references stage trains what it did not finish")
