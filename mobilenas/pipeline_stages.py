"""The stages of :mod:`mobilenas.pipeline`, one function each (``stage_<name>(pipeline)``
returns the JSON-safe result recorded in the manifest)."""
from __future__ import annotations

import shutil
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from latency.doctor import quick_doctor
from latency.registry import measurer_from_recorded
from mobilenas.model_stage import load_trained, measure_side_by_side, train_to_folder
from mobilenas.pipeline import Pipeline, StageFailed, StageStopped, child_run
from mobilenas.pipeline_netadapt import stage_netadapt  # noqa: F401  (looked up by name)
from mobilenas.spec_args import resolve_spec
from nas.job import SearchJob
from nas.pricing import PricedShape, open_pricing, prepare_table
from nas.search import SearchConfig
from search_spaces.counting import spec_cost
from search_spaces.encoding import parse_spec, spec_to_dict
from search_spaces.onnx_export import export_module_onnx
from search_spaces.paper_table import render_markdown
from search_spaces.spec import ArchSpec
from search_spaces.timm_arch import to_arch_def
from storage.runfolder import RunStatus
from storage.statefiles import write_json, write_text_atomic
from training.config import TrainConfig
from training.datasets import Dataset, default_resolution, load_dataset

def data_of(p: Pipeline) -> Dataset:
    return load_dataset(p.config.data, resolution=default_resolution(p.config.data), split_seed=0)


def adapted(name: str, width: float, data: Dataset) -> ArchSpec:
    return resolve_spec(name, width=width, resolution=data.resolution, num_classes=data.num_classes,
                        in_channels=data.in_channels)


def stage_table(p: Pipeline) -> dict[str, Any]:
    """Create or reuse this machine's table at the data's shape (drift probe); fix the target."""
    data = data_of(p)
    shape = PricedShape(data.resolution, data.in_channels, data.num_classes)
    folder, message = prepare_table(p.path, p.path.parent, shape, p.config.space, p.config.table)
    p.say(message)
    predictor, record = open_pricing(folder, on_drift=p.config.on_drift)
    p.say(f"latency table: {record['entries']} layers; drift probe: {predictor.drift.describe()}")
    manifest = predictor.table.manifest
    record["doctor"] = quick_doctor(measurer_from_recorded(manifest["measurer"]), parse_spec(manifest["reference"]["spec"]))
    p.say(f"timing on this machine: {record['doctor']['verdict']} (speed swing {record['doctor']['swing']:.2f}x, "
          f"paired ratios repeat within {record['doctor']['paired_spread']:.3f}x)")
    result = {"folder": str(folder), "message": message, "record": record, "target_ms": p.config.target_ms}
    if p.config.target_like is not None:
        spec = adapted(p.config.target_like, p.config.target_width, data)
        paired = predictor.measure([spec])[0]
        measured = {**paired.to_dict(), "table_ms": paired.in_units_of(predictor.table.reference_baseline_ms)}
        result.update(target_ms=measured["table_ms"] * p.config.target_scale, target_like=p.config.target_like,
                      target_like_measured=measured, target_like_predicted_ms=predictor.predict_ms(spec))
        p.say(f"target {result['target_ms']:.4f} ms (table units) = {p.config.target_scale:g} x the measured latency of "
              f"{p.config.target_like} x{p.config.target_width:g}: {paired.describe()} the table's reference, "
              f"{paired.latency_ms:.4f} ms at this moment's speed")
    return result


def stage_search(p: Pipeline) -> dict[str, Any]:
    """The global search (MnasNet reward) aiming above the target; NetAdapt trims afterwards."""
    table, budget = p.result("table"), p.config.stage_budget
    config = SearchConfig(target_ms=table["target_ms"] * budget.search_target_factor, data=p.config.data,
                          strategy=p.config.strategy, trials=budget.search_trials, seed=p.config.seed,
                          epochs=budget.search_epochs, concurrency=p.config.workers, space=p.config.space,
                          w=p.config.w)
    existing = child_run(p.path / "search", "search")
    if existing is not None and existing.status is RunStatus.FINISHED:
        return existing.manifest["summary"]
    job = SearchJob(config, out=p.path / "search", table=table["folder"], on_drift=p.config.on_drift,
                    address=p.config.address, folder=existing, say=p.say, progress=lambda info: p.say(_search_line(info)))
    summary = job.run()
    if job.folder is None or job.folder.status is not RunStatus.FINISHED:
        raise StageStopped()
    if summary.get("best_spec") is None:
        raise StageFailed(f"the search in {job.folder.path} found no usable model (every trial failed)")
    return summary


def _search_line(info: Any) -> str:
    best = ("best reward -" if info.best_reward != info.best_reward else
            f"best reward {info.best_reward:.4f} (top-1 {100 * info.best_top1:.1f}%, {info.best_latency_ms:.3f} ms)")
    eta = "-" if info.eta_s != info.eta_s else f"{info.eta_s:.0f} s"
    return f"search: {info.done}/{info.total} trials | {best} | ETA {eta}"


def final_recipe(p: Pipeline) -> TrainConfig:
    """The one recipe every compared model is trained with (final and references)."""
    return TrainConfig(epochs=p.config.stage_budget.final_epochs, threads=p.config.threads, seed=p.config.seed)


def _train(p: Pipeline, folder_name: str, spec: ArchSpec, data: Dataset) -> dict[str, Any]:
    result = train_to_folder(p.path / folder_name, spec, data, final_recipe(p), p.stop)
    if result is None:
        raise StageStopped()
    return result


def stage_final(p: Pipeline) -> dict[str, Any]:
    """The final spec trained from scratch with the full recipe (MobileNetV3 section 6.1)."""
    spec = parse_spec(p.result("netadapt")["final_spec"])
    return _train(p, "final", spec, data_of(p))


def stage_references(p: Pipeline) -> dict[str, Any]:
    """MobileNetV3 references at width multipliers, adapted to the data, same recipe."""
    data, models = data_of(p), []
    for name, width in p.config.references:
        label = f"{name}-x{width:g}"
        p.say(f"references: training {label}")
        models.append({"name": label, **_train(p, f"references/{label}", adapted(name, width, data), data)})
    return {"models": models}


def trained_models(p: Pipeline) -> list[dict[str, Any]]:
    """The final model and the references as ``{name, arch, top1, ...}`` rows."""
    return [{"name": "final", **p.result("final")}, *p.result("references")["models"]]


def stage_measure(p: Pipeline) -> dict[str, Any]:
    """End-to-end latency of every trained model, interleaved rounds in one session."""
    models = trained_models(p)
    figures = measure_side_by_side([parse_spec(m["arch"]) for m in models])
    return {"models": [{"name": m["name"], "arch": m["arch"], **f} for m, f in zip(models, figures)]}


def stage_export(p: Pipeline) -> dict[str, Any]:
    """Spec JSON, paper table, timm arch_def, ONNX (checked in ONNX Runtime) and weights."""
    out = p.path / "export"
    out.mkdir(exist_ok=True)
    spec = parse_spec(p.result("final")["arch"])
    model = load_trained(p.path / "final", spec)
    write_json(out / "final.json", spec_to_dict(spec))
    write_text_atomic(out / "final.md", render_markdown(spec, classes_label=str(spec.num_classes)))
    try:
        timm = {"arch_def": to_arch_def(spec)}
    except ValueError as exc:  # e.g. a regular conv with SE: timm's block strings cannot say it
        timm = {"arch_def": None, "why_not": str(exc)}
    write_json(out / "final_timm.json", timm)
    shape = (1, spec.in_channels, spec.resolution, spec.resolution)
    export_module_onnx(model, shape, out / "final.onnx")
    shutil.copyfile(p.path / "final" / "model.pt", out / "final.pt")
    return {"folder": str(out), "onnx_max_abs_diff": _check_onnx(model, out / "final.onnx", data_of(p)),
            "timm": "written" if timm["arch_def"] is not None else f"not expressible: {timm['why_not']}"}


def _check_onnx(model: torch.nn.Module, path: Any, data: Dataset) -> float:
    """ONNX Runtime output vs torch on 16 test images; raises when they disagree."""
    x = data.x_test[:16].contiguous()
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {session.get_inputs()[0].name: x[i:i + 1].numpy()})[0]
                          for i in range(len(x))])
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= 1e-3 * max(1.0, float(np.max(np.abs(expected)))):
        raise StageFailed(f"the exported ONNX model disagrees with torch (max abs diff {diff:.3g})")
    return diff


def stage_report(p: Pipeline) -> dict[str, Any]:
    from mobilenas.pipeline_report import write_pipeline_report

    md, page = write_pipeline_report(p)
    return {"markdown": str(md), "html": str(page)}


def summary(p: Pipeline) -> dict[str, Any]:
    """The final JSON object of ``mobilenas run --json``."""
    final, measured = p.result("final"), p.result("measure")["models"]
    latency = {m["name"]: m["latency_ms"] for m in measured}
    spec = parse_spec(final["arch"])
    cost = spec_cost(spec)
    references = [{"name": m["name"], "top1": m["top1"], "latency_ms": latency[m["name"]]}
                  for m in p.result("references")["models"]]
    return {"run_dir": str(p.path), "final_spec": final["arch"], "top1": final["top1"],
            "top1_stderr": final["top1_stderr"], "latency_ms": latency["final"],
            "target_ms": p.result("table")["target_ms"], "params": cost.params, "madds": cost.madds,
            "references": references, "report": p.result("report")["html"],
            "export": p.result("export")["folder"]}
