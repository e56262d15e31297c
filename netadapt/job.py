"""The ``netadapt`` job behind ``mobilenas netadapt``: setup checked before any work, then the run.

:class:`JobSetup` is everything a run needs, resolved and validated up front (a bad option
must not surface after minutes of work) and recorded in the run manifest, so that
``--resume`` rebuilds the same job from the folder alone. :func:`execute` trains the start
model when no weights were given (resumable, inside the run folder), commits iteration 0,
runs the NetAdapt loop (MobileNetV3 section 4.2) with a Ray or in-process evaluator, and
writes the final outputs. Printing stays in :mod:`mobilenas.cli_netadapt`.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from latency.fingerprint import device_fingerprint
from latency.lazy import LazyPredictor, ensure_table
from latency.measurers import Measurer
from latency.paired import WHOLE_MODEL_PRECISION, WHOLE_MODEL_SECONDS
from netadapt.evaluation import FinetuneJob, SequentialEvaluator
from netadapt.floor import floor_spec
from netadapt.loop import LoopEvent, LoopResult, NetAdapt, NetAdaptConfig
from netadapt.report import plot_trajectories, write_final
from netadapt.state import LoopStore, load_weights, save_weights
from search_spaces.encoding import format_spec, parse_spec, spec_from_dict
from search_spaces.registry import SPACES
from search_spaces.spec import ArchSpec
from storage.runfolder import RunFolder
from storage.status import Status
from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.datasets import Dataset, load_dataset
from training.evaluate import Budget, binomial_stderr
from training.inference import evaluate_model
from training.job import WEIGHTS, train_in

START_WEIGHTS, PRETRAIN_DIR, RAY_DIR = "start.pt", "pretrain", "ray"
DEFAULT_TABLE_SPACE = "mnasnet"
"""The registered space (:data:`search_spaces.registry.SPACES`) whose table prices a job when
none is given: the table's reference and calibration samples come from it, and its key under a
platform names it. Width rewrites keep a spec's block types, so a space holding them serves."""
PRETRAIN_CHECKPOINT = "pretrain.ckpt"
"""Where an earlier version trained the start model (no run folder); such a run is refused."""
STEP_PRECISION = 0.03
"""The proposals of a NetAdapt step that is not the last are measured to +/- this share (the last
step's, which decide where the loop lands, to :data:`latency.paired.WHOLE_MODEL_PRECISION`): they
only rank cuts of a few percent each. Measured every step to +/- 1.5% under the load injector, a
``make demo`` run's NetAdapt steps averaged 29 s (stage time over steps) against about 15 s when
only the last step's were measured; at +/- 3%, 21-24 s (four runs of one round)."""
Say = Callable[[str], None]


@dataclass(frozen=True)
class JobSetup:
    """A NetAdapt job, JSON-safe: ``weights`` None means "train the start model first"."""

    netadapt: NetAdaptConfig
    spec: str
    spec_name: str
    data: str
    split_seed: int
    table: str
    on_drift: str
    workers: int
    address: str | None
    weights: str | None
    pretrain_epochs: int
    table_trusted: bool = False  # made by this job or its pipeline on this machine: latency.drift.open_table
    platform: dict | None = None  # latency.platforms.Platform.record() of --platform; None: the default measurer
    table_space: str = DEFAULT_TABLE_SPACE  # runs recorded before this field priced with the MnasNet space's tables
    measure_like: str | None = None  # the budget's model: kept models are timed paired with it (see measured_with)
    measure_like_ms: float | None = None  # its latency in the table's units

    def __post_init__(self) -> None:
        if self.table_space not in SPACES:
            raise ValueError(f"--table-space {self.table_space!r} is not known; expected one of {sorted(SPACES)}")
        if (self.measure_like is None) != (self.measure_like_ms is None):
            raise ValueError("measure_like and measure_like_ms go together: the budget's model and its latency "
                             "in the table's units")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "netadapt": self.netadapt.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSetup":
        return cls(**{**data, "netadapt": NetAdaptConfig.from_dict(data["netadapt"])})


def default_table_folder(out: Path, spec: ArchSpec, platform: str | None = None) -> Path:
    """A lazy table per machine, platform and input shape, shared by the runs under ``out``
    (``platform`` None: the default measurer, the folder name of earlier versions)."""
    digest = hashlib.sha256(json.dumps(device_fingerprint(), sort_keys=True).encode()).hexdigest()[:8]
    named = "" if platform is None else f"{platform}-"
    return out / f"latency-lazy-{named}{digest}-r{spec.resolution}-i{spec.in_channels}-n{spec.num_classes}"


def open_predictor(table: Path, spec: ArchSpec, on_drift: str, say: Say, *, create: bool,
                   calibrate: ArchSpec | None = None, trusted: bool = False, measurer: Measurer | None = None,
                   space: str = DEFAULT_TABLE_SPACE) -> LazyPredictor:
    """The lazily measuring predictor of ``table`` (built first for the registered ``space`` with
    ``measurer`` when ``create`` and absent; calibrated down to the floor spec ``calibrate`` when given, see :func:`calibrate_for`)."""
    if create:
        _, message = ensure_table(table, space=space, resolution=spec.resolution, in_channels=spec.in_channels,
                                  num_classes=spec.num_classes, measurer=measurer)
        say(message)
    elif not (table / "manifest.json").is_file():
        raise FileNotFoundError(f"--table {str(table)!r} is not a latency table folder (no manifest.json)")
    predictor = LazyPredictor(table, on_drift=on_drift, trusted=trusted)  # hardware checked here
    if calibrate is None or predictor.drift.other_hardware:  # never measure into another machine's table
        return predictor
    calibrate_for(table, spec, calibrate, say)
    return LazyPredictor(table, on_drift=on_drift, trusted=trusted)


def calibrate_for(table: Path, spec: ArchSpec, floor: ArchSpec, say: Say) -> None:
    """Add the start model, two uniformly thinner versions and the floor to the table's
    calibration specs (measured whole, then the calibration refitted), so that predictions
    are calibrated over the latency range NetAdapt walks; a no-op when already there."""
    from latency.build import BuildConfig, TableBuilder
    from latency.registry import measurer_from_recorded
    from latency.table import calibration_specs, read_manifest
    from search_spaces.spec import scale_width

    specs = [spec, scale_width(spec, 0.75), scale_width(spec, 0.5), floor]
    if set(specs) <= calibration_specs(table):
        return
    manifest = read_manifest(table)
    say(f"measuring {len(specs)} whole models between the start and the floor to calibrate {table}")
    builder = TableBuilder(table, measurer_from_recorded(manifest["measurer"]), parse_spec(manifest["reference"]["spec"]),
                           space=manifest["space"], config=BuildConfig(calibration_rounds=2),
                           space_input=(spec.in_channels, spec.num_classes))
    builder.measure_calibration(specs)
    builder.finish()


def read_start_weights(path: Path, spec: ArchSpec) -> dict[str, torch.Tensor]:
    """The weights in a ``mobilenas train`` checkpoint or run folder (or a NetAdapt ``final.pt``),
    checked against ``spec``."""
    if path.is_dir():
        if (path / "manifest.json").is_file():
            status = json.loads((path / "manifest.json").read_text()).get("status")
            if status not in ("completed", Status.FINISHED.value):  # "completed": written by earlier versions
                raise ValueError(f"--weights {str(path)!r} is a {status!r} run; finish it first (mobilenas train --resume)")
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"--weights {str(path)!r} does not exist; expected a checkpoint.pt or a train run folder")
    if path.name == "checkpoint.pt" or path.suffix == ".ckpt":
        checkpoint = load_checkpoint(path)
        trained = spec_from_dict(checkpoint["spec"])
        if trained != spec:
            raise ValueError(f"--weights {str(path)!r} were trained for {format_spec(trained)}, not for SPEC adapted "
                             f"to the data ({format_spec(spec)})")
        return {k: v.detach().clone() for k, v in checkpoint["model"].items()}
    return load_weights(path)


def check_target(setup: JobSetup, predict_ms: Callable[[ArchSpec], float]) -> tuple[float, float]:
    """Start and floor latency; ValueError when the target is at or above the start latency or
    below what any sequence of proposals can reach."""
    spec, target = parse_spec(setup.spec), setup.netadapt.target_ms
    l0_ms = float(predict_ms(spec))
    if target >= l0_ms:
        raise ValueError(f"--target-ms {target:g} is not below the start latency {l0_ms:.4f} ms (predicted); "
                         "nothing to adapt")
    floor_ms = float(predict_ms(floor_spec(spec, setup.netadapt.proposal_config())))
    if target < floor_ms:
        raise ValueError(f"--target-ms {target:g} is unreachable: with every layer at the granularity floor "
                         f"({setup.netadapt.granularity}) the model still takes {floor_ms:.4f} ms (predicted)")
    return l0_ms, floor_ms


def load_data(setup: JobSetup, spec: ArchSpec) -> Dataset:
    return load_dataset(setup.data, resolution=spec.resolution, split_seed=setup.split_seed)


def pretrain(folder: RunFolder, setup: JobSetup, spec: ArchSpec, data: Dataset, stop: Callable[[], bool],
             on_progress: Callable | None) -> dict[str, torch.Tensor] | None:
    """Train the start model with the default recipe, in a train run folder under ``pretrain/``
    (resumable); its weights, or None if stopped."""
    if folder.file(PRETRAIN_CHECKPOINT).is_file():
        raise ValueError(f"{folder.file(PRETRAIN_CHECKPOINT)}: the start model's training was begun by an earlier "
                         "mobilenas version; start a new netadapt run (or give --weights)")
    config = TrainConfig(epochs=setup.pretrain_epochs, seed=setup.netadapt.seed, threads=setup.netadapt.long_threads,
                         device=setup.netadapt.device)
    result = train_in(folder.file(PRETRAIN_DIR), spec, data, config, spec_name=setup.spec_name, data_name=setup.data,
                      split_seed=setup.split_seed, should_stop=stop, on_progress=on_progress)
    if result is None:
        return None
    return load_weights(Path(result["run_dir"]) / WEIGHTS)


def start_weights(folder: RunFolder, setup: JobSetup, spec: ArchSpec, data: Dataset, stop: Callable[[], bool],
                  say: Say, on_progress: Callable | None) -> dict[str, torch.Tensor] | None:
    """The start model's weights, kept as ``start.pt`` in the run folder (None if stopped)."""
    path = folder.file(START_WEIGHTS)
    if path.is_file():
        return load_weights(path)
    if setup.weights is not None:
        weights = read_start_weights(Path(setup.weights), spec)
    else:
        say(f"no --weights: training {setup.spec_name} first with the default recipe ({setup.pretrain_epochs} epoch"
            f"{'s' if setup.pretrain_epochs != 1 else ''} on {setup.data}; resumable)")
        weights = pretrain(folder, setup, spec, data, stop, on_progress)
        if weights is None:
            return None
    save_weights(path, weights)
    return weights


def make_evaluator(folder: RunFolder, setup: JobSetup, data: Dataset):
    job = FinetuneJob(Budget(steps=setup.netadapt.short_steps), threads=setup.netadapt.threads,
                      device=setup.netadapt.device)
    if setup.workers == 1 and setup.address is None:
        return SequentialEvaluator(data, job)
    from netadapt.parallel import RayEvaluator

    return RayEvaluator(data, job, temp_dir=folder.file(RAY_DIR), workers=setup.workers, address=setup.address)


def begin(loop: NetAdapt, spec: ArchSpec, weights: dict[str, torch.Tensor], data: Dataset) -> None:
    """Commit iteration 0: the start model with its validation top-1 (as trained)."""
    model = _model(spec, weights)
    top1, _ = evaluate_model(model, data.x_val, data.y_val, device=torch.device("cpu"))
    loop.start(spec, weights, top1, binomial_stderr(top1, len(data.y_val)))


def _model(spec: ArchSpec, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    from netadapt.report import model_of

    return model_of(spec, weights)


def measured_many_with(predictor: LazyPredictor, setup: JobSetup | None = None, min_seconds: float = 0.0,
                       precision: float = WHOLE_MODEL_PRECISION) -> Callable[[Sequence[ArchSpec]], list[float]]:
    """NetAdapt's end-to-end check of several models at once: each timed through the table's own
    measurer (the platform it was built for, a device command included), paired with the
    table's reference and given in the table's units, comparable with its predictions and the
    target. With ``setup.measure_like`` (a pipeline with a ``--target-like`` budget) they are
    paired with that model instead (:meth:`latency.lazy.LazyPredictor.measure_like_ms`).
    ``min_seconds``: each measurement spread over at least that long (the last step's, which
    chooses where the loop lands: :data:`latency.paired.WHOLE_MODEL_SECONDS`); ``precision``:
    pairs added until each ratio is known to +/- that share (:data:`STEP_PRECISION` for the
    proposals of a step that is not the last)."""
    if setup is None or setup.measure_like is None:
        return lambda specs: predictor.measure_ms(list(specs), min_seconds=min_seconds, precision=precision)
    like, like_ms = parse_spec(setup.measure_like), float(setup.measure_like_ms)
    return lambda specs: predictor.measure_like_ms(list(specs), like, like_ms, min_seconds=min_seconds,
                                                   precision=precision)


def measured_with(predictor: LazyPredictor,
                  setup: JobSetup | None = None) -> Callable[[ArchSpec, dict[str, torch.Tensor]], float]:
    """:func:`measured_many_with` for one model with its weights (which do not change its latency)."""
    many = measured_many_with(predictor, setup)
    return lambda spec, weights: many([spec])[0]


def finish(folder: RunFolder, setup: JobSetup, result: LoopResult, data: Dataset,
           measure_ms: Callable[[ArchSpec, dict[str, torch.Tensor]], float]) -> dict[str, Any]:
    """Final files, trajectory plot, end-to-end latency; the manifest's ``results``."""
    store = LoopStore(folder.path)
    history = store.history.read()
    plot_trajectories({setup.netadapt.select: history}, folder.file("trajectory.png"),
                      target_ms=setup.netadapt.target_ms, title=f"NetAdapt {setup.spec_name} on {setup.data}")
    final = write_final(folder.path, result.spec, result.weights, data)
    measured = measure_ms(result.spec, result.weights)
    start = history[history["iteration"] == 0].iloc[0]
    summary = {"run_dir": str(folder.path), "iterations": result.state.iteration, "final_spec": final["arch"],
               "final_top1": final["test_top1"], "final_top1_stderr": final["test_top1_stderr"],
               "final_val_top1": result.state.top1, "predicted_latency_ms": result.state.predicted_ms,
               "measured_latency_ms": measured, "target_ms": setup.netadapt.target_ms,
               "start_predicted_ms": float(start["predicted_ms"]), "start_measured_ms": _nan(start["measured_ms"]),
               "start_val_top1": float(start["val_top1"]), "select": setup.netadapt.select,
               "elapsed_s": result.state.elapsed_s}
    folder.set_status(Status.FINISHED, results=summary)
    return summary


def _nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def execute(folder: RunFolder, setup: JobSetup, stop: Callable[[], bool], say: Say,
            on_event: Callable[[LoopEvent], None], on_train: Callable | None = None) -> dict[str, Any] | None:
    """Run (or resume) the job in ``folder``; None when stopped (state saved for --resume)."""
    spec = parse_spec(setup.spec)
    data = load_data(setup, spec)
    predictor = open_predictor(Path(setup.table), spec, setup.on_drift, say, create=False, trusted=setup.table_trusted)
    store = LoopStore(folder.path)
    if not store.exists():
        weights = start_weights(folder, setup, spec, data, stop, say, on_train)
        if weights is None:
            return None
    with make_evaluator(folder, setup, data) as evaluator:
        loop = NetAdapt(setup.netadapt, data, predictor.predict_ms, evaluator, store, predict_many=predictor.predict_many,
                        measure_ms=measured_with(predictor, setup),
                        measure_many=measured_many_with(predictor, setup, WHOLE_MODEL_SECONDS),
                        quick_measure_many=measured_many_with(predictor, setup, precision=STEP_PRECISION),
                        on_event=on_event, should_stop=stop)
        if not store.exists():
            begin(loop, spec, weights, data)
        result = loop.run()
    if result.stopped:
        return None
    return finish(folder, setup, result, data, measured_with(predictor, setup))


def read_setup(folder: RunFolder) -> JobSetup:
    setup = folder.manifest["config"]
    if not isinstance(setup, dict) or "netadapt" not in setup:
        raise ValueError(f"{folder.file('manifest.json')}: field 'config' lacks 'netadapt'; not a netadapt run")
    return JobSetup.from_dict(setup)
