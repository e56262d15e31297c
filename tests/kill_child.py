"""Child process of the kill/resume tests: a small table build or ``mobilenas train`` that
SIGKILLs itself at a chosen write: ``NAME:N:MODE`` kills at the N-th write of the file NAME
(an append for a CSV log, an atomic rename for anything else),
``before`` it, ``after`` it, or ``torn`` (half of an append's bytes written and fsynced);
``step:N`` kills right after training step N. A real kill, not an exception: no handler,
``finally`` or atexit runs.

    python -m tests.kill_child table FOLDER LOG --kill entries.csv:2:torn
    python -m tests.kill_child table FOLDER LOG --standin --keys 4 --kill entries.csv:1:after
    python -m tests.kill_child train --kill step:40 -- train SPEC --data digits ...
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillPlan:
    def __init__(self, plan: str | None) -> None:
        self.name, self.n, self.mode = (plan.split(":") + [""])[:3] if plan else ("", "0", "")
        self.n, self.count = int(self.n), 0

    def hit(self, path: str | os.PathLike) -> str | None:
        if Path(path).name != self.name:
            return None
        self.count += 1
        return self.mode if self.count == self.n else None


def _torn_append(log: object, rows: list) -> None:
    from storage.statefiles import repair_torn_tail

    repair_torn_tail(log.path)
    new = not log.path.exists() or log.path.stat().st_size == 0
    data = log._text(rows, header=new).encode()
    cut = max(1, len(data) // 2)
    while cut > 1 and data[cut - 1:cut] == b"\n":
        cut -= 1
    with open(log.path, "ab") as handle:
        handle.write(data[:cut])
        handle.flush()
        os.fsync(handle.fileno())
    die()


def install(plan: KillPlan) -> None:
    """Kill at the planned CSV append or atomic rename (state files, manifests, checkpoints)."""
    from storage import statefiles

    append = statefiles.CsvLog.append

    def planned_append(self, rows):
        rows, mode = list(rows), plan.hit(self.path)
        if mode == "before":
            die()
        if mode == "torn":
            _torn_append(self, rows)
        append(self, rows)
        if mode == "after":
            die()

    statefiles.CsvLog.append = planned_append
    replace = os.replace

    def planned_replace(src, dst, *args, **kwargs):
        mode = None if str(dst).endswith(".csv") else plan.hit(dst)  # a CSV counts its appends only
        if mode in ("before", "torn"):
            die()  # the temporary file is written, the rename never happens
        replace(src, dst, *args, **kwargs)
        if mode == "after":
            die()

    os.replace = planned_replace


def kill_after_step(step: int) -> None:
    from training import trainer

    train_step = trainer.Trainer._train_step

    def planned(self, *args):
        train_step(self, *args)
        if self.step == step:
            die()

    trainer.Trainer._train_step = planned


def standin_builder(folder: Path) -> object:
    """A table builder measuring through the stand-in device (:mod:`latency.standin`), two keys a batch."""
    from latency.build import BuildConfig, TableBuilder
    from latency.command import CommandMeasurer, CommandSettings
    from latency.validation import sample_specs
    from tests.fast_tables import SPACE

    measurer = CommandMeasurer(CommandSettings(template=f"{sys.executable} -m latency.standin {{model}} --runs 3 --warmup 1"))
    return TableBuilder(folder, measurer, sample_specs(SPACE, 1, seed=99)[0], space="mnasnet",
                        config=BuildConfig(batch_keys=2, max_passes=1))


def build_table(folder: Path, log: Path, n_keys: int, n_specs: int, standin: bool = False) -> None:
    """The small table build; every measured key's label is appended to ``log`` first. With
    ``standin``, layers only, measured through the stand-in device."""
    import latency.build as build
    from tests.fast_tables import calibration_specs, small_builder, small_keys

    measure_key = build.measure_key

    def logged(measurer, key, config):
        row = measure_key(measurer, key, config)
        with open(log, "a") as handle:
            handle.write(key.label() + "\n")
        return row

    build.measure_key = logged
    if standin:
        standin_builder(folder).measure_keys(small_keys(n_keys))
        return
    builder = small_builder(folder)
    builder.measure_keys(small_keys(n_keys))
    builder.measure_calibration(calibration_specs(n_specs))
    builder.finish()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=("table", "train"))
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--kill", default=None)
    parser.add_argument("--keys", type=int, default=12)
    parser.add_argument("--specs", type=int, default=2)
    parser.add_argument("--standin", action="store_true", help="table: layers only, through the stand-in device")
    args, rest = parser.parse_known_args()
    if args.kill and args.kill.startswith("step:"):
        kill_after_step(int(args.kill.split(":")[1]))
    else:
        install(KillPlan(args.kill))
    if args.job == "table":
        build_table(Path(args.paths[0]), Path(args.paths[1]), args.keys, args.specs, args.standin)
        return 0
    from mobilenas.cli import main as cli_main

    return cli_main([a for a in rest if a != "--"])


if __name__ == "__main__":
    sys.exit(main())
