"""Sub-network evaluation with inherited weights (once-for-all section 3.3, BigNAS section 3.4).

A sub-network sliced out of a trained :class:`nas.supernet.Supernet` has the right weights but
not the right BatchNorm statistics (the supernet's running statistics mix every sub-network it
trained). :func:`recalibrate` re-estimates them on a few hundred training images with the
sub-network's own forward passes, as once-for-all does; :func:`evaluate_layout` then measures
validation top-1. No training, so a candidate costs a few forward passes instead of epochs of
proxy training (:class:`SupernetEvaluator`, the ``supernet`` evaluator of :mod:`nas.evaluator`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from nas.candidate import CandidateResult, failed
from nas.supernet import Layout, Supernet, extract_subnet, make_supernet
from search_spaces.spec import ArchSpec
from storage.runfolder import RunFolder
from storage.status import Status
from training.checkpoint import load_checkpoint
from training.datasets import Dataset
from training.evaluate import adapt_spec, binomial_stderr
from training.runtime import generator, job_context, resolve_device

EVAL_BATCH = 500
CALIBRATION_IMAGES = 256
CHECKPOINT = "checkpoint.pt"
JOB = "supernet"


@torch.no_grad()
def recalibrate(net: Supernet, layout: Layout, x: torch.Tensor, *, batch_size: int = EVAL_BATCH) -> None:
    """Set the BatchNorm statistics of ``layout``'s slices to the plain average over ``x``
    (forward passes in training mode; dropout does not reach a BatchNorm)."""
    was_training = net.training
    net.train()
    for k, start in enumerate(range(0, len(x), batch_size)):
        net.set_bn_momentum(1.0 / (k + 1))  # cumulative average: batch k weighs 1/(k+1)
        net(x[start:start + batch_size], layout)
    net.set_bn_momentum(0.1)
    net.train(was_training)


@torch.no_grad()
def evaluate_layout(net: Supernet, layout: Layout, x: torch.Tensor, y: torch.Tensor, *,
                    batch_size: int = EVAL_BATCH) -> float:
    """Top-1 (fraction) of sub-network ``layout`` on ``(x, y)`` in eval mode."""
    was_training = net.training
    net.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = net(x[start:start + batch_size], layout)
        correct += int((logits.argmax(1) == y[start:start + batch_size]).sum())
    net.train(was_training)
    return correct / len(y)


def calibration_images(data: Dataset, n: int, seed: int) -> torch.Tensor:
    """``n`` training images, a fixed random choice of ``seed`` (never validation images)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(data.y_train):
        raise ValueError(f"calibration images = {n!r} is not allowed; expected an integer in [2, {len(data.y_train)}]")
    order = torch.randperm(len(data.y_train), generator=generator(seed, "recalibrate", 0))
    return data.x_train[order[:n]]


def check_supernet_run(run_dir: str | Path, *, space: str, data: str,
                       shape: dict[str, int] | None = None) -> RunFolder:
    """The finished ``mobilenas supernet train`` run folder ``run_dir``, checked against the
    search's space, data name and (when given) data ``shape`` (resolution, num_classes,
    in_channels), reading only its manifest. Raises ``FileNotFoundError``/``ValueError`` of one
    line naming the folder and what is wrong."""
    path = Path(run_dir)
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(f"--supernet {str(path)!r} is not a run folder (no manifest.json); "
                                "expected a folder written by mobilenas supernet train")
    folder = RunFolder.open(path, job=JOB)
    if folder.status is not Status.FINISHED:
        raise ValueError(f"--supernet {str(path)!r} is {folder.status.value}, not finished; finish it with "
                         f"mobilenas supernet train --resume {path}")
    trained = {"space": folder.manifest["config"].get("space"), "data": folder.manifest["config"].get("data"),
               **{k: folder.manifest.get("data", {}).get(k) for k in (shape or {})}}
    wanted = {"space": space, "data": data, **(shape or {})}
    differ = [f"{k} {trained[k]!r} != {wanted[k]!r}" for k in wanted if trained[k] != wanted[k]]
    if differ:
        raise ValueError(f"--supernet {str(path)!r} was trained for another search: {', '.join(differ)} (supernet != search)")
    if not (path / CHECKPOINT).is_file():
        raise FileNotFoundError(f"--supernet {str(path)!r} has no {CHECKPOINT}")
    return folder


def trained_space(run_dir: str | Path) -> str | None:
    """The space a supernet run folder was trained for (None when its manifest cannot be read:
    :func:`check_supernet_run` says why)."""
    try:
        space = RunFolder.open(Path(run_dir), job=JOB).manifest["config"]["space"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return space if isinstance(space, str) else None


def load_supernet_run(run_dir: str | Path, *, space: str, data: Dataset) -> tuple[Supernet, dict[str, Any]]:
    """The trained supernet of a finished run folder checked by :func:`check_supernet_run`
    against the search's space and data; returns it (eval mode, CPU) and a record of its source."""
    shape = {"resolution": data.resolution, "num_classes": data.num_classes, "in_channels": data.in_channels}
    folder = check_supernet_run(run_dir, space=space, data=data.name, shape=shape)
    checkpoint = load_checkpoint(folder.path / CHECKPOINT)
    net = make_supernet(space, resolution=data.resolution, num_classes=data.num_classes, in_channels=data.in_channels)
    net.load_state_dict(checkpoint["model"])
    config = folder.manifest["config"]
    record = {"run_dir": str(folder.path.resolve()), "run_id": folder.manifest["run_id"],
              "step": int(checkpoint["step"]), "epochs": config.get("epochs"), "rule": config.get("rule")}
    return net.eval(), record


class SupernetEvaluator:
    """The ``supernet`` evaluator: a candidate's validation top-1 with weights inherited from
    a trained supernet, after BatchNorm recalibration on ``calibration`` training images.

    The result depends only on the candidate (fixed images, fixed weights): evaluating a spec
    twice gives the same top-1. ``epochs`` of the result is 0 (nothing is trained)."""

    name = "supernet"
    per_epoch = False

    def __init__(self, net: Supernet, data: Dataset, calibration: torch.Tensor, *, threads: int = 1,
                 device: str = "cpu", source: dict[str, Any] | None = None) -> None:
        self.net, self.data, self.calibration = net, data, calibration
        self.threads, self.device = threads, device
        self.source = dict(source or {})
        self._placed: torch.device | None = None
        self._x_val, self._y_val = data.x_val, data.y_val

    @classmethod
    def from_run(cls, run_dir: str | Path | None, data: Dataset, *, space: str, seed: int = 0, threads: int = 1,
                 device: str = "cpu", calibration: int = CALIBRATION_IMAGES) -> "SupernetEvaluator":
        if run_dir is None:
            raise ValueError("--evaluator supernet needs --supernet RUN_DIR")
        net, source = load_supernet_run(run_dir, space=space, data=data)
        images = calibration_images(data, calibration, seed)
        evaluator = cls(net, data, images, threads=threads, device=device,
                        source={**source, "calibration_images": calibration, "seed": seed})
        if device == "cpu":
            evaluator._place(torch.device("cpu"))  # shipped to Ray workers ready: no copy per trial
        return evaluator

    def evaluate(self, spec: ArchSpec, *, on_epoch: Any = None) -> CandidateResult:
        """Recalibrate and evaluate ``spec`` (adapted to the data); a spec outside the
        supernet's space is a ``failed`` result, not an exception."""
        start = time.perf_counter()
        try:
            layout = self._layout(spec, None)
        except ValueError as exc:
            return failed(f"not a sub-network of the supernet: {exc}", time.perf_counter() - start)
        device = resolve_device(self.device)
        with job_context(self.threads, device):
            self._place(device)
            recalibrate(self.net, layout, self.calibration)
            top1 = evaluate_layout(self.net, layout, self._x_val, self._y_val)
        return CandidateResult(top1, binomial_stderr(top1, len(self._y_val)), Status.FINISHED, 0, time.perf_counter() - start)

    def subnet_weights(self, spec: ArchSpec, template: ArchSpec | None = None) -> dict[str, torch.Tensor]:
        """The stand-alone model's state dict of ``spec`` (CPU): the supernet's slices with
        BatchNorm recalibrated as :meth:`evaluate` does, so the model scores what it scored.
        With ``template`` (a spec of the space), ``spec`` may be any re-width of it the supernet
        holds (:meth:`nas.supernet.Supernet.widened_layout`)."""
        layout = self._layout(spec, template)
        device = resolve_device(self.device)
        with job_context(self.threads, device):
            self._place(device)
            recalibrate(self.net, layout, self.calibration)
            model = extract_subnet(self.net, adapt_spec(spec, self.data), layout)
        return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}

    def _layout(self, spec: ArchSpec, template: ArchSpec | None) -> Layout:
        spec = adapt_spec(spec, self.data)
        if template is None:
            return self.net.layout_of(spec)
        return self.net.widened_layout(spec, adapt_spec(template, self.data))

    def _place(self, device: torch.device) -> None:
        """Move weights and images once, channels-last (2-3x faster CPU convolutions, measured)."""
        if self._placed != device:
            layout = torch.channels_last
            self.net.to(device, memory_format=layout)
            self.calibration = self.calibration.to(device, memory_format=layout)
            self._x_val = self.data.x_val.to(device, memory_format=layout)
            self._y_val = self.data.y_val.to(device)
            self._placed = device

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.source, "threads": self.threads, "device": self.device,
                "data": self.data.name}
