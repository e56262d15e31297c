"""The stages of the pipeline, one function each (``stage_<name>(run)`` returns the JSON-safe
result recorded in the manifest), and :data:`RECIPE`, the list the runner is handed."""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
import torch

from latency.doctor import quick_doctor
from latency.paired import WHOLE_MODEL_SECONDS
from latency.platforms import Platform, file_table, resolve_table, table_key
from latency.registry import measurer_from_recorded
from nas.job import SearchJob
from nas.pricing import PricedShape, open_pricing, prepare_table
from nas.search import SearchConfig
from pipeline.config import PipelineConfig, table_trusted
from pipeline.measure import measure_side_by_side, table_measurer
from pipeline.netadapt_rounds import budget_model, stage_netadapt
from pipeline.report import write_pipeline_report
from pipeline.runner import Pipeline, Stage, StageFailed, StageStopped
from pipeline.side_by_side import references_beside
from pipeline.supernet_stage import final_start, stage_supernet, uses_supernet
from search_spaces.counting import spec_cost
from search_spaces.encoding import format_spec, parse_spec, spec_to_dict
from search_spaces.onnx_export import export_module_onnx
from search_spaces.paper_table import render_markdown
from search_spaces.resolve import resolve_spec
from search_spaces.spec import ArchSpec
from search_spaces.timm_arch import to_arch_def
from storage.runfolder import RunFolder, child_run
from storage.statefiles import read_json, write_json, write_text_atomic
from storage.status import Status
from training.config import TrainConfig
from training.datasets import Dataset, default_resolution, load_dataset
from training.job import WEIGHTS, load_trained, train_in


def data_of(run: Pipeline) -> Dataset:
    return load_dataset(run.config.data, resolution=default_resolution(run.config.data), split_seed=0)


def adapted(name: str, width: float, data: Dataset) -> ArchSpec:
    return resolve_spec(name, width=width, resolution=data.resolution, num_classes=data.num_classes,
                        in_channels=data.in_channels)


def stage_table(run: Pipeline) -> dict[str, Any]:
    """Create or reuse this machine's table at the data's shape (drift probe); fix the target."""
    data = data_of(run)
    shape = PricedShape(data.resolution, data.in_channels, data.num_classes)
    platform = None if run.config.platform is None else Platform.from_record(run.config.platform)
    key = table_key(run.config.space, data.resolution, data.in_channels, data.num_classes)
    table = resolve_table(platform, run.config.table, key)
    measurer = None if platform is None else platform.make_measurer()
    folder, message = prepare_table(run.path, run.path.parent, shape, run.config.space, table, measurer)
    run.say(message)
    if platform is not None and table is None:
        run.say(file_table(platform, key, folder))
    predictor, record = open_pricing(folder, on_drift=run.config.on_drift, trusted=table is None)
    run.say(f"latency table: {record['entries']} layers; {predictor.drift.describe()}")
    manifest = predictor.table.manifest
    record["doctor"] = quick_doctor(measurer_from_recorded(manifest["measurer"]), parse_spec(manifest["reference"]["spec"]))
    run.say(f"timing on this machine: {record['doctor']['verdict']} (speed swing {record['doctor']['swing']:.2f}x, "
            f"paired ratios repeat within {record['doctor']['paired_spread']:.3f}x)")
    result = {"folder": str(folder), "message": message, "record": record, "target_ms": run.config.target_ms,
              "trusted": table is None}
    if run.config.target_like is not None:
        spec = adapted(run.config.target_like, run.config.target_width, data)
        paired = predictor.measure([spec])[0]
        measured = {**paired.to_dict(), "table_ms": paired.in_units_of(predictor.table.reference_baseline_ms)}
        result.update(target_ms=measured["table_ms"] * run.config.target_scale, target_like=run.config.target_like,
                      target_like_measured=measured, target_like_predicted_ms=predictor.predict_ms(spec))
        run.say(f"target {result['target_ms']:.4f} ms (table units) = {run.config.target_scale:g} x the measured latency "
                f"of {run.config.target_like} x{run.config.target_width:g}: {paired.describe()} the table's reference, "
                f"{paired.latency_ms:.4f} ms at this moment's speed")
    return result


def search_pricing(run: Pipeline) -> dict[str, Any]:
    """The search's pricing settings: measured candidates are paired with the budget's own model
    when there is one (:func:`pipeline.netadapt_rounds.budget_model`), as NetAdapt's are."""
    if run.config.price_by != "measured":
        return {"price_by": run.config.price_by}
    if run.config.target_like is None:
        return {"price_by": "measured"}
    data = data_of(run)
    return {"price_by": "measured", **budget_model(run, format_spec(adapted(run.config.target_like, 1.0, data)))}


def stage_search(run: Pipeline) -> dict[str, Any]:
    """The global search (the run's reward and evaluator) aiming above the target; NetAdapt trims afterwards."""
    table, budget = run.result("table"), run.config.stage_budget
    evaluator = ({"evaluator": "supernet", "supernet": run.result("supernet")["run_dir"],
                  "trials": budget.supernet_trials} if uses_supernet(run) else
                 {"trials": budget.search_trials, "epochs": budget.search_epochs})
    config = SearchConfig(target_ms=table["target_ms"] * budget.search_target_factor, data=run.config.data,
                          strategy=run.config.strategy, seed=run.config.seed, concurrency=run.config.workers,
                          space=run.config.space, reward=run.config.reward,
                          w=None if run.config.reward == "hard" else run.config.w, platform=run.config.platform,
                          **evaluator, **search_pricing(run))
    existing = child_run(run.path / "search", "search")
    if existing is not None and existing.status is Status.FINISHED:
        return existing.manifest["summary"]
    job = SearchJob(config, out=run.path / "search", table=table["folder"], on_drift=run.config.on_drift,
                    table_trusted=table_trusted(run.config, table),
                    address=run.config.address, folder=existing, say=run.say,
                    progress=lambda info: run.say(_search_line(info)))
    summary = job.run()
    if job.folder is None or job.folder.status is not Status.FINISHED:
        raise StageStopped()
    if summary.get("best_spec") is None:
        raise StageFailed(f"the search in {job.folder.path} found no usable model (every trial failed)")
    return summary


def _search_line(info: Any) -> str:
    best = ("best reward -" if math.isnan(info.best_reward) else
            f"best reward {info.best_reward:.4f} (top-1 {100 * info.best_top1:.1f}%, {info.best_latency_ms:.3f} ms)")
    eta = "-" if math.isnan(info.eta_s) else f"{info.eta_s:.0f} s"
    return f"search: {info.done}/{info.total} trials | {best} | ETA {eta}"


def final_recipe(run: Pipeline) -> TrainConfig:
    """The one recipe every compared model is trained with (final and references); with two
    workers or more the references train beside the final model (:mod:`pipeline.side_by_side`),
    each training on half the threads."""
    threads = max(1, run.config.threads // 2) if run.config.workers >= 2 else run.config.threads
    return TrainConfig(epochs=run.config.stage_budget.final_epochs, threads=threads, seed=run.config.seed)


def _train(run: Pipeline, folder_name: str, spec: ArchSpec, data: Dataset,
           init_weights: Path | None = None) -> dict[str, Any]:
    """A ``train`` run folder under ``folder_name`` (created, resumed or read back when finished),
    from ``init_weights`` when given."""
    parent = run.path / folder_name
    earlier = _earlier_training(parent)
    if earlier is not None:
        return earlier
    result = train_in(parent, spec, data, final_recipe(run), spec_name=Path(folder_name).name,
                      data_name=run.config.data, split_seed=0, should_stop=run.stop, init_weights=init_weights)
    if result is None:
        raise StageStopped()
    return result


def _earlier_training(folder: Path) -> dict[str, Any] | None:
    """A model an earlier version trained straight into ``folder`` (``result.json`` + ``model.pt``,
    no run folder): its result when finished; an unfinished one is refused with one line."""
    if (folder / "result.json").is_file():
        return read_json(folder / "result.json", fields={"arch": str, "top1": float}, what="training result")
    if (folder / "checkpoint.pt").is_file():
        raise StageFailed(f"{folder} holds an unfinished training of an earlier mobilenas version (checkpoint.pt "
                          f"without a run folder); remove {folder} to train that model again")
    return None


def stage_final(run: Pipeline) -> dict[str, Any]:
    """The final spec trained with the full recipe: from scratch (MobileNetV3 section 6.1), or
    with the supernet evaluator from NetAdapt's weights, inherited from the supernet (once-for-all)."""
    spec = parse_spec(run.result("netadapt")["final_spec"])
    start, data = final_start(run), data_of(run)
    beside = _unfinished_references(run, data) if run.config.workers >= 2 else []
    with references_beside(run.path, run.config.data, beside, final_recipe(run), run.say, run.stop):
        result = _train(run, "final", spec, data, init_weights=start)
    return {**result, "start": "scratch" if start is None else str(start)}


def _reference_jobs(run: Pipeline, data: Dataset) -> list[tuple[str, ArchSpec]]:
    """Each reference's folder under the run and its spec adapted to ``data``."""
    return [(f"references/{name}-x{width:g}", adapted(name, width, data)) for name, width in run.config.references]


def _unfinished_references(run: Pipeline, data: Dataset) -> list[tuple[str, ArchSpec]]:
    """The references whose training has not finished (none trained by an earlier version)."""
    def done(folder: Path) -> bool:
        trained = child_run(folder, "train")
        return (folder / "result.json").is_file() or (folder / "checkpoint.pt").is_file() or (
            trained is not None and trained.status is Status.FINISHED)

    return [(name, spec) for name, spec in _reference_jobs(run, data) if not done(run.path / name)]


def stage_references(run: Pipeline) -> dict[str, Any]:
    """MobileNetV3 references at width multipliers, adapted to the data, same recipe."""
    data, models = data_of(run), []
    for folder_name, spec in _reference_jobs(run, data):
        label = Path(folder_name).name
        run.say(f"references: {label}")
        models.append({"name": label, **_train(run, folder_name, spec, data)})
    return {"models": models}


def trained_models(run: Pipeline) -> list[dict[str, Any]]:
    """The final model and the references as ``{name, arch, top1, ...}`` rows."""
    return [{"name": "final", **run.result("final")}, *run.result("references")["models"]]


def stage_measure(run: Pipeline) -> dict[str, Any]:
    """End-to-end latency of every trained model, each paired with MobileNetV3-Small (1x itself)
    in interleaved rounds of one session, spread over :data:`latency.paired.WHOLE_MODEL_SECONDS`
    like NetAdapt's round checks: the report's "final vs Small at its latency" decides too."""
    models = trained_models(run)
    figures = measure_side_by_side([parse_spec(m["arch"]) for m in models],
                                   measurer=table_measurer(run.result("table")["folder"]),
                                   min_seconds=WHOLE_MODEL_SECONDS)
    return {"models": [{"name": m["name"], "arch": m["arch"], **f} for m, f in zip(models, figures)]}


def stage_export(run: Pipeline) -> dict[str, Any]:
    """Spec JSON, paper table, timm arch_def, ONNX (checked in ONNX Runtime) and weights."""
    out = run.path / "export"
    out.mkdir(exist_ok=True)
    spec = parse_spec(run.result("final")["arch"])
    trained = Path(run.result("final").get("run_dir", run.path / "final"))  # no run_dir: an earlier version's folder
    model = load_trained(trained, spec)
    write_json(out / "final.json", spec_to_dict(spec))
    write_text_atomic(out / "final.md", render_markdown(spec, classes_label=str(spec.num_classes)))
    try:
        timm = {"arch_def": to_arch_def(spec)}
    except ValueError as exc:  # e.g. a regular conv with SE: timm's block strings cannot say it
        timm = {"arch_def": None, "why_not": str(exc)}
    write_json(out / "final_timm.json", timm)
    shape = (1, spec.in_channels, spec.resolution, spec.resolution)
    export_module_onnx(model, shape, out / "final.onnx")
    shutil.copyfile(trained / WEIGHTS, out / "final.pt")
    return {"folder": str(out), "onnx_max_abs_diff": _check_onnx(model, out / "final.onnx", data_of(run)),
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


def stage_report(run: Pipeline) -> dict[str, Any]:
    """``report.md`` and a self-contained ``report.html``."""
    md, page = write_pipeline_report(run)
    return {"markdown": str(md), "html": str(page)}


def summary(run: Pipeline) -> dict[str, Any]:
    """The final JSON object of ``mobilenas run --json``."""
    final, measured = run.result("final"), run.result("measure")["models"]
    latency = {m["name"]: m["latency_ms"] for m in measured}
    spec = parse_spec(final["arch"])
    cost = spec_cost(spec)
    references = [{"name": m["name"], "top1": m["top1"], "latency_ms": latency[m["name"]]}
                  for m in run.result("references")["models"]]
    return {"run_dir": str(run.path), "final_spec": final["arch"], "top1": final["top1"],
            "top1_stderr": final["top1_stderr"], "latency_ms": latency["final"],
            "target_ms": run.result("table")["target_ms"], "params": cost.params, "madds": cost.madds,
            "references": references, "report": run.result("report")["html"],
            "export": run.result("export")["folder"]}


RECIPE = (Stage("table", stage_table), Stage("supernet", stage_supernet), Stage("search", stage_search),
          Stage("netadapt", stage_netadapt),
          Stage("final", stage_final), Stage("references", stage_references), Stage("measure", stage_measure),
          Stage("export", stage_export), Stage("report", stage_report))
"""The stages of ``mobilenas run``, in order (each recorded as ``stages.<name>`` in the manifest)."""
STAGES = tuple(stage.name for stage in RECIPE)


def pipeline_for(folder: RunFolder, config: PipelineConfig, *, say: Callable[[str], None] = lambda m: None,
                 stop: Callable[[], bool] = lambda: False) -> Pipeline:
    """The runner of ``folder`` with the full recipe."""
    return Pipeline(folder, config, RECIPE, summary, say=say, stop=stop)
