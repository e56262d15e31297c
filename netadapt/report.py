"""What a NetAdapt run leaves behind: end-to-end latency, the final model files, the trajectory plot.

- :func:`end_to_end_ms`: ONNX Runtime CPU latency (batch 1, 1 thread, paired) of a model with
  its weights, the check on the table's prediction (MobileNetV3 section 4: the latency the
  search optimises must be the latency measured on the device);
- :func:`write_final`: ``final.json`` (spec), ``final.md`` (the paper's table), ``final.pt``
  (weights, ``weights_only`` loadable), ``final.onnx``, test top-1;
- :func:`plot_trajectories`: validation top-1 against latency per iteration (``trajectory.png``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from latency.endtoend import default_reference, measure_specs
from latency.measurers import OrtMeasurer, OrtSettings
from latency.paired import WHOLE_MODEL_PRECISION
from netadapt.state import save_weights
from search_spaces.builder import build_model
from search_spaces.encoding import format_spec, spec_to_dict
from search_spaces.onnx_export import export_module_onnx
from search_spaces.paper_table import render_markdown
from search_spaces.spec import ArchSpec
from storage.statefiles import write_json, write_text_atomic
from training.datasets import Dataset
from training.evaluate import binomial_stderr
from training.inference import evaluate_model

MEASURE_SETTINGS = OrtSettings(intra_op_threads=1, batch=1, warmup=30, repeats=300)


def model_of(spec: ArchSpec, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = build_model(spec)
    model.load_state_dict(weights)
    return model.eval()


def input_shape(spec: ArchSpec) -> tuple[int, int, int, int]:
    return (1, spec.in_channels, spec.resolution, spec.resolution)


def end_to_end_ms(spec: ArchSpec, weights: dict[str, torch.Tensor], settings: OrtSettings = MEASURE_SETTINGS) -> float:
    """ONNX Runtime CPU latency (ms) of ``spec`` with ``weights``, exported whole, paired run by
    run with MobileNetV3-Small at its input shape (:mod:`latency.endtoend`): the ratio times the
    reference's median meanwhile."""
    data = export_module_onnx(model_of(spec, weights), input_shape(spec))
    paired = measure_specs(OrtMeasurer(settings), [spec], default_reference(spec), models=[data], passes=2,
                           precision=WHOLE_MODEL_PRECISION)[0]
    return paired.latency_ms


def write_final(folder: Path, spec: ArchSpec, weights: dict[str, torch.Tensor], data: Dataset) -> dict[str, Any]:
    """Write the final model files into ``folder``; returns test top-1, its stderr and the arch."""
    model = model_of(spec, weights)
    top1, loss = evaluate_model(model, data.x_test, data.y_test, device=torch.device("cpu"))
    write_json(folder / "final.json", spec_to_dict(spec))
    write_text_atomic(folder / "final.md", render_markdown(spec, classes_label=str(spec.num_classes)))
    save_weights(folder / "final.pt", weights)
    export_module_onnx(model, input_shape(spec), folder / "final.onnx")
    return {"test_top1": top1, "test_top1_stderr": binomial_stderr(top1, len(data.y_test)), "test_loss": loss,
            "arch": format_spec(spec)}


def chosen_rows(history: pd.DataFrame) -> pd.DataFrame:
    """The start row and each iteration's chosen proposal, in iteration order."""
    chosen = history["chosen"].astype(str).str.lower() == "true"
    return history[chosen].sort_values("iteration")


def plot_trajectories(histories: Mapping[str, pd.DataFrame], path: Path, *, target_ms: float | None = None,
                      title: str = "NetAdapt trajectory") -> Path:
    """Validation top-1 vs latency of the chosen model per iteration, one line per history:
    predicted (solid, all proposals as dots) and measured end to end (dashed) latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, history), color in zip(histories.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        path_rows = chosen_rows(history)
        ax.scatter(history["predicted_ms"], history["val_top1"], s=8, color=color, alpha=0.25)
        ax.plot(path_rows["predicted_ms"], path_rows["val_top1"], "-o", color=color, ms=4, label=f"{name}: predicted")
        if path_rows["measured_ms"].notna().any():
            ax.plot(path_rows["measured_ms"], path_rows["val_top1"], "--", color=color, alpha=0.7,
                    label=f"{name}: measured (ORT)")
    if target_ms is not None:
        ax.axvline(target_ms, color="grey", ls=":", label=f"target {target_ms:.3f} ms")
    ax.invert_xaxis()
    ax.set_xlabel("latency of the chosen model (ms)  ->  faster")
    ax.set_ylabel("validation top-1 after short fine-tune")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
