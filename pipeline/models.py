"""Train a model into a folder (resumable), and measure several models' latency side by side.

Used by the pipeline for the final model and the reference models (MobileNetV3 section 6.1:
every compared model gets the same recipe). Training resumes from ``checkpoint.pt`` after a
kill; a finished model is ``result.json`` + ``model.pt`` + ``spec.json`` and is never redone.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from latency.measurers import OrtSettings, measure_model_ms, onnx_bytes_of
from search_spaces.builder import build_model
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, spec_to_dict
from search_spaces.spec import ArchSpec
from storage.statefiles import read_json, write_json
from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.datasets import Dataset
from training.evaluate import binomial_stderr
from training.inference import evaluate_model
from training.trainer import Trainer

RESULT, WEIGHTS, SPEC, CHECKPOINT = "result.json", "model.pt", "spec.json", "checkpoint.pt"


def trained_result(folder: Path) -> dict[str, Any] | None:
    """The result of a finished training in ``folder``, or None."""
    path = folder / RESULT
    if not path.is_file():
        return None
    return read_json(path, fields={"arch": str, "top1": float}, what="training result")


def train_to_folder(folder: Path, spec: ArchSpec, data: Dataset, config: TrainConfig,
                    should_stop: Callable[[], bool]) -> dict[str, Any] | None:
    """Train ``spec`` (or continue a killed training) and evaluate on the test split.

    Returns the result (also in ``result.json``), or None when stopped (checkpoint kept).
    Raises ``training.trainer.TrainingDiverged`` when the loss diverges.
    """
    folder.mkdir(parents=True, exist_ok=True)
    done = trained_result(folder)
    if done is not None:
        return done
    checkpoint = folder / CHECKPOINT
    resume = load_checkpoint(checkpoint) if checkpoint.is_file() else None
    trainer = Trainer(spec, data, config, should_stop=should_stop, checkpoint_path=checkpoint)
    outcome = trainer.fit(resume)
    if outcome.status == "interrupted":
        return None
    model = outcome.model.to("cpu").eval()
    top1, loss = evaluate_model(model, data.x_test, data.y_test, device=torch.device("cpu"))
    _save_weights(model, folder / WEIGHTS)
    write_json(folder / SPEC, spec_to_dict(spec))
    cost = spec_cost(spec)
    result = {"arch": format_spec(spec), "top1": top1, "top1_stderr": binomial_stderr(top1, len(data.y_test)),
              "test_loss": loss, "val_top1": outcome.val_top1, "epochs": config.epochs, "steps": outcome.steps,
              "train_s": outcome.wall_s, "params": cost.params, "madds": cost.madds}
    write_json(folder / RESULT, result)
    return result


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    torch.save(model.state_dict(), temporary)
    os.replace(temporary, path)


def load_trained(folder: Path, spec: ArchSpec) -> torch.nn.Module:
    """The trained model of ``folder`` (eval mode, CPU)."""
    model = build_model(spec)
    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise ValueError(f"{folder / WEIGHTS} cannot be read as weights: {str(exc).splitlines()[0]}") from None
    model.load_state_dict(state)
    return model.eval()


def measure_side_by_side(specs: Sequence[ArchSpec], *, rounds: int = 5, settings: OrtSettings | None = None
                         ) -> list[dict[str, float]]:
    """End-to-end ONNX Runtime latency of each spec, measured in ``rounds`` interleaved rounds
    (so drift hits every model alike); median over rounds of the per-round medians, and the
    rounds' min/max as the spread (batch 1, 1 thread by default)."""
    settings = settings or OrtSettings(warmup=10, repeats=50)
    models = [onnx_bytes_of(build_model(s).eval(), (1, s.in_channels, s.resolution, s.resolution)) for s in specs]
    medians: list[list[float]] = [[] for _ in specs]
    for _ in range(rounds):
        for index, (spec, model) in enumerate(zip(specs, models)):
            samples = measure_model_ms(model, (spec.in_channels, spec.resolution, spec.resolution), settings)
            medians[index].append(float(np.median(samples)))
    return [{"latency_ms": float(np.median(m)), "latency_min_ms": min(m), "latency_max_ms": max(m),
             "rounds": rounds} for m in medians]


def finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
