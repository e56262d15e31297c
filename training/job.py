"""Train a spec into a run folder (job ``train``): the one way a model is trained and kept, used
by ``mobilenas train``, the pipeline's final and reference trainings (MobileNetV3 section 6.1:
every compared model gets the same recipe) and NetAdapt's pre-training.

A run folder (:class:`storage.runfolder.RunFolder`) holds ``manifest.json`` (config, spec, data,
latency settings, status), ``spec.json``, ``metrics.csv`` (one row per epoch, appended as they
come), ``checkpoint.pt`` (after every epoch: a kill loses at most the epoch in progress), and
once finished ``model.pt`` (the evaluated weights), ``model.onnx`` and the summary in the
manifest's ``results``; a run started from given weights keeps a copy as ``init.pt`` (its
manifest's ``init`` names where they came from), so a resume before the first checkpoint starts
from them again. :func:`create_job` checks spec and data before the folder exists;
:func:`open_job` reopens one for ``--resume`` with its recorded spec, data and config, each
checked; :func:`execute` trains (or continues) inside the run's session. This module prints
nothing; the latency of the ONNX model is measured by a callback of the caller's layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from search_spaces.builder import build_model
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, parse_spec, spec_to_dict
from search_spaces.onnx_export import export_module_onnx
from search_spaces.spec import ArchSpec
from storage.runfolder import MANIFEST, RunFolder, child_run
from storage.statefiles import CsvLog, StateFileError, check_fields, write_json
from storage.status import Status
from storage.torchfiles import load_torch, save_torch
from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.datasets import Dataset, load_dataset
from training.evaluate import binomial_stderr
from training.inference import evaluate_model
from training.runtime import resolve_device
from training.trainer import METRIC_COLUMNS, Progress, Trainer, TrainingDiverged, steps_per_epoch

METRICS, CHECKPOINT, ONNX, SPEC, WEIGHTS = "metrics.csv", "checkpoint.pt", "model.onnx", "spec.json", "model.pt"
INIT = "init.pt"
DEFAULT_LATENCY_REPEATS = 100
TRAIN_FIELDS = {"spec_name": str, "arch": str, "data": dict, "latency": dict}
DATA_FIELDS = {"name": str, "split_seed": int, "resolution": int}
MeasureMs = Callable[[Path, tuple[int, int, int], int], float]
"""``measure_ms(onnx_path, (channels, height, width), repeats)``: the model's latency in ms."""


@dataclass
class TrainJob:
    """Everything a run needs, resolved and checked before the run (and its folder) starts."""

    run: RunFolder
    spec: ArchSpec
    data: Dataset
    config: TrainConfig
    repeats: int
    checkpoint: dict[str, Any] | None
    resumed_from: Status | None = None
    """The status a resumed run had (None for a new run)."""
    initial_state: dict[str, torch.Tensor] | None = None
    """The weights training starts from (None: the builder's initialization)."""

    @property
    def total_steps(self) -> int:
        per_epoch = steps_per_epoch(len(self.data.y_train), self.config.batch_size)
        return self.config.steps if self.config.steps is not None else self.config.epochs * per_epoch

    @property
    def done_steps(self) -> int:
        return 0 if self.checkpoint is None else int(self.checkpoint["step"])


def slug_for(spec_name: str, data_name: str) -> str:
    """The readable part of a run id: the spec's name (a file's stem) and the data set's kind."""
    return f"{Path(spec_name).stem[:24] if '|' not in spec_name else 'spec'}-{data_name.split(':')[0]}"


def create_job(out: Path, spec: ArchSpec, data: Dataset, config: TrainConfig, *, spec_name: str, data_name: str,
               split_seed: int, slug: str, repeats: int = DEFAULT_LATENCY_REPEATS,
               extra: Mapping[str, Any] | None = None, init_weights: Path | None = None) -> TrainJob:
    """A new run folder under ``out`` (spec, data and ``init_weights`` checked first; ``extra``
    manifest fields). ``init_weights``: a state-dict file of ``spec`` to start from."""
    resolve_device(config.device)
    Trainer(spec, data, config)  # spec vs data checked now, not after the folder exists
    initial = None if init_weights is None else _initial_state(spec, Path(init_weights))
    init = {} if initial is None else {"init": {"weights": INIT, "source": str(init_weights)}}
    run = RunFolder.create(out, job="train", slug=slug, seed=config.seed, config=config.to_dict(),
                           extra={"spec_name": spec_name, "arch": format_spec(spec),
                                  "data": {"name": data_name, "split_seed": split_seed, **data.summary()},
                                  "latency": {"repeats": repeats}, **init, **dict(extra or {})})
    if initial is not None:
        save_torch(run.file(INIT), initial)
    write_json(run.file(SPEC), spec_to_dict(spec))
    return TrainJob(run, spec, data, config, repeats, None, initial_state=initial)


def _initial_state(spec: ArchSpec, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path``, refused with one line unless it fits ``spec``'s model."""
    state = load_torch(path, what="initial weights")
    try:
        build_model(spec).load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        reason = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2]) or type(exc).__name__
        raise ValueError(f"initial weights {str(path)!r} do not fit {format_spec(spec)}: {reason[:300]}") from None
    return state


def _recorded(run: RunFolder) -> tuple[ArchSpec, TrainConfig, int]:
    """The spec, TrainConfig and latency repeats recorded in the manifest, each checked."""
    where = str(run.file(MANIFEST))
    check_fields(run.manifest["data"], DATA_FIELDS, f"{where}: data")
    check_fields(run.manifest["latency"], {"repeats": int}, f"{where}: latency")
    repeats = run.manifest["latency"]["repeats"]
    if repeats < 1:
        raise StateFileError(f"{where}: latency.repeats = {repeats} is not allowed; expected an integer >= 1")
    try:
        config = TrainConfig.from_dict(run.manifest["config"])
    except (TypeError, ValueError) as exc:
        raise StateFileError(f"{where}: config: {exc}") from None
    try:
        spec = parse_spec(run.manifest["arch"])
    except ValueError as exc:
        raise StateFileError(f"{where}: arch: {exc}") from None
    return spec, config, repeats


def _checkpoint(run: RunFolder, spec: ArchSpec, config: TrainConfig, data: Dataset) -> dict[str, Any] | None:
    """The run's checkpoint (None before the first one was written), checked against the manifest."""
    path = run.file(CHECKPOINT)
    if not path.exists():
        return None
    checkpoint = load_checkpoint(path)
    if checkpoint["spec"] != spec_to_dict(spec) or checkpoint["config"] != config.to_dict():
        field = "spec" if checkpoint["spec"] != spec_to_dict(spec) else "config"
        raise StateFileError(f"{path}: its {field} differs from {run.file(MANIFEST)}; the checkpoint belongs to "
                             "another run")
    if checkpoint.get("data") != data.summary():
        raise StateFileError(f"{path}: written for data {checkpoint.get('data')}, but "
                             f"{run.manifest['data']['name']!r} now loads as {data.summary()}")
    return checkpoint


def open_job(path: Path) -> TrainJob:
    """Reopen a run to continue it: resumable, and its manifest, spec, data and checkpoint agree."""
    run = RunFolder.open(path, job="train", fields=TRAIN_FIELDS)
    run.check_resumable()
    spec, config, repeats = _recorded(run)
    resolve_device(config.device)
    info = run.manifest["data"]
    data = load_dataset(info["name"], resolution=info["resolution"], split_seed=info["split_seed"])
    checkpoint = _checkpoint(run, spec, config, data)
    if not run.file(SPEC).is_file():
        write_json(run.file(SPEC), spec_to_dict(spec))
    initial = _initial_state(spec, run.file(INIT)) if "init" in run.manifest else None
    return TrainJob(run, spec, data, config, repeats, checkpoint, resumed_from=run.status, initial_state=initial)


def _finish(job: TrainJob, result: Any, metrics: CsvLog, measure_ms: MeasureMs | None) -> dict[str, Any]:
    """Test top-1, weights, ONNX export, params/MAdds and (if measured) latency of the trained model."""
    spec, run = job.spec, job.run
    model = result.model.to("cpu").eval()
    top1, loss = evaluate_model(model, job.data.x_test, job.data.y_test, device=torch.device("cpu"))
    metrics.rewrite(result.metrics.to_dict("records"))
    save_torch(run.file(WEIGHTS), model.state_dict())
    shape = (spec.in_channels, spec.resolution, spec.resolution)
    export_module_onnx(model, (1, *shape), run.file(ONNX))
    latency = {} if measure_ms is None else {"latency_ms": measure_ms(run.file(ONNX), shape, job.repeats)}
    cost = spec_cost(spec)
    return {"top1": top1, "top1_stderr": binomial_stderr(top1, len(job.data.y_test)), "test_loss": loss,
            "val_top1": result.val_top1, **latency, "params": cost.params, "madds": cost.madds,
            "epochs": int(result.metrics["epoch"].max()), "steps": result.steps,
            "train_s": float(result.metrics["train_s"].sum()), "images_per_s": result.images_per_s,
            "device": result.device, "arch": format_spec(spec), "run_dir": str(run.path)}


def _metrics_writer(metrics: CsvLog, on_progress: Callable[[Progress], None] | None) -> Callable[[Progress], None]:
    def report(event: Progress) -> None:
        if event.phase == "epoch" and event.metrics is not None:
            metrics.append([event.metrics])
        if on_progress is not None:
            on_progress(event)
    return report


def execute(job: TrainJob, *, should_stop: Callable[[], bool] = lambda: False,
            on_progress: Callable[[Progress], None] | None = None,
            measure_ms: MeasureMs | None = None, on_start: Callable[[], None] | None = None) -> dict[str, Any] | None:
    """Train inside the run's session (``on_start`` called once it has begun); the summary (also the
    manifest's ``results``), or None when stopped (checkpoint saved). A diverged run is recorded
    ``diverged`` and raises ValueError."""
    run = job.run
    with run.session() as stop:
        if on_start is not None:
            on_start()
        metrics = CsvLog(run.file(METRICS), METRIC_COLUMNS)
        metrics.rewrite([] if job.checkpoint is None else job.checkpoint["metrics"])  # exactly the saved epochs
        trainer = Trainer(job.spec, job.data, job.config, initial_state=job.initial_state,
                          should_stop=lambda: stop() or should_stop(),
                          checkpoint_path=run.file(CHECKPOINT), on_progress=_metrics_writer(metrics, on_progress))
        try:
            result = trainer.fit(job.checkpoint)
        except TrainingDiverged as exc:
            run.set_status(Status.DIVERGED, error=str(exc))
            raise ValueError(f"{exc} (run folder {run.path})") from exc
        if result.status is Status.INTERRUPTED:
            run.set_status(Status.INTERRUPTED, step=result.steps)
            return None
        summary = _finish(job, result, metrics, measure_ms)
        run.set_status(Status.FINISHED, step=result.steps, results=summary)
    return summary


def train_in(parent: Path, spec: ArchSpec, data: Dataset, config: TrainConfig, *, spec_name: str, data_name: str,
             split_seed: int, should_stop: Callable[[], bool],
             on_progress: Callable[[Progress], None] | None = None,
             init_weights: Path | None = None) -> dict[str, Any] | None:
    """Train ``spec`` in the one train run folder under ``parent`` (created, resumed, or read back
    when finished), for jobs that train a model as one of their steps; None when stopped.
    ``data`` is ``load_dataset(data_name, split_seed=split_seed, ...)``, as a resume reloads it."""
    run = child_run(parent, "train")
    if run is not None and run.status is Status.FINISHED:
        return run.manifest["results"]
    if run is None:
        job = create_job(parent, spec, data, config, spec_name=spec_name, data_name=data_name, split_seed=split_seed,
                         slug=slug_for(spec_name, data_name), init_weights=init_weights)
    else:
        job = open_job(run.path)
    return execute(job, should_stop=should_stop, on_progress=on_progress)


def load_trained(run_dir: Path, spec: ArchSpec) -> torch.nn.Module:
    """The trained model of a run folder (eval mode, CPU)."""
    model = build_model(spec)
    model.load_state_dict(load_torch(Path(run_dir) / WEIGHTS, what="weights file"))
    return model.eval()
