"""Careless inputs: corrupt, truncated, wrong-type, wrong-shape, foreign and missing state files,
and bad options. Each must end with exit code 2 and ONE line on stderr that names the file or
option and the problem: no traceback, nothing accepted silently, no misleading message.

The CLI runs in-process (``mobilenas.cli.main``). Tables are copies of one small finished table
(12 keys, tests.fast_tables); train runs are copies of one tiny interrupted run.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from mobilenas.cli import main
from search_spaces.encoding import spec_to_json
from storage.runfolder import StopFlag
from tests.fast_tables import build_small_table
from tests.training.conftest import tiny_spec

FAST = ["--data", "digits", "--resolution", "16", "--threads", "1", "--device", "cpu", "--latency-repeats", "5",
        "--batch-size", "64", "--epochs", "1"]


@dataclass
class Ctx:
    tmp: Path
    run_template: Path
    table_template: Path

    def table(self) -> Path:
        folder = self.tmp / "table"
        if not folder.exists():
            shutil.copytree(self.table_template, folder)
        return folder

    def run(self) -> Path:
        folder = self.tmp / "run"
        if not folder.exists():
            shutil.copytree(self.run_template, folder)
        return folder

    def spec(self) -> Path:
        path = self.tmp / "tiny.json"
        path.write_text(spec_to_json(tiny_spec(in_channels=3, num_classes=1000)))
        return path


@pytest.fixture(scope="module")
def table_template(tmp_path_factory) -> Path:
    return build_small_table(tmp_path_factory.mktemp("table") / "t", n_keys=12)


@pytest.fixture(scope="module")
def run_template(tmp_path_factory) -> Path:
    """A tiny train run interrupted after 3 steps (checkpoint, manifest, spec, metrics)."""
    out = tmp_path_factory.mktemp("train")
    spec = out / "tiny.json"
    spec.write_text(spec_to_json(tiny_spec(in_channels=3, num_classes=1000)))
    calls = iter(range(10_000))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StopFlag, "__call__", lambda self: next(calls) >= 2)
        assert main(["train", str(spec), *FAST, "--out", str(out / "runs"), "--json"]) == 130
    (run,) = (out / "runs").iterdir()
    return run


def _edit_json(path: Path, change: Callable[[dict], object]) -> None:
    """Apply ``change`` to the parsed object in place and write it back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _edit_entries(path: Path, line: int, column: str, value: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    fields = lines[line - 1].rstrip("\n").split(",")
    fields[header.index(column)] = value
    lines[line - 1] = ",".join(fields) + "\n"
    path.write_text("".join(lines))


def _show(ctx: Ctx) -> list[str]:
    return ["latency", "show", str(ctx.table())]


def _resume(ctx: Ctx) -> list[str]:
    return ["train", "--resume", str(ctx.run())]


# Each case: (id, prepare(ctx) -> argv, fragments that must all be in the error line).
CASES: list[tuple[str, Callable[[Ctx], list[str]], tuple[str, ...]]] = []


def case(name: str, *fragments: str):
    def register(prepare: Callable[[Ctx], list[str]]) -> Callable[[Ctx], list[str]]:
        CASES.append((name, prepare, fragments))
        return prepare
    return register


# --- latency table manifest -------------------------------------------------------------------
for _name, _text, _says in [("list", "[1, 2]", "is a list; expected a JSON object"),
                            ("string", '"table"', "is a string; expected a JSON object"),
                            ("empty", "", "not valid JSON"),
                            ("truncated", None, "not valid JSON"),
                            ("binary", "\udcff", "not valid JSON")]:
    def _prepare(ctx: Ctx, text=_text) -> list[str]:
        path = ctx.table() / "manifest.json"
        if text is None:
            path.write_text(path.read_text()[:200])
        elif text == "\udcff":
            path.write_bytes(b"\xff\xfe\x00\x01garbage")
        else:
            path.write_text(text)
        return _show(ctx)
    case(f"table-manifest-{_name}", "manifest.json", _says)(_prepare)


@case("table-manifest-no-reference", "manifest.json", "field 'reference' is missing")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m.pop("reference"))
    return _show(ctx)


@case("table-manifest-calibration-list", "manifest.json", "field 'calibration' is a list")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m.update(calibration=[]))
    return _show(ctx)


@case("table-calibration-entry-no-coef", "manifest.json", "calibration['32']", "field 'coef' is missing")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m["calibration"]["32"].pop("coef"))
    return _show(ctx)


@case("table-calibration-entry-number", "manifest.json", "calibration['32'] is not an object")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m["calibration"].update({"32": 3}))
    return _show(ctx)


@case("table-calibration-coef-text", "manifest.json", "'coef' holds a non-number")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m["calibration"]["32"].update(coef=["a", "b"]))
    return _show(ctx)


@case("table-calibration-unknown-feature", "manifest.json", "features ['speed'] are not known")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m["calibration"]["32"].update(features=["speed"]))
    return ["latency", "predict", str(ctx.table()), "mobilenetv3-small", "--resolution", "32", "--classes", "10"]


@case("table-reference-spec-garbage", "manifest.json: reference.spec", "cannot parse spec string 'garbage'")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m["reference"].update(spec="garbage"))
    return ["latency", "predict", str(ctx.table()), "mobilenetv3-small", "--resolution", "32"]


@case("table-entries-count-text", "manifest.json", "field 'entries' is a string; expected an integer")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m.update(entries="many"))
    return _show(ctx)


@case("table-timings-list", "manifest.json", "field 'build_timings' is a list")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m.update(build_timings=[]))
    return _show(ctx)


@case("calibration-csv-garbage-spec", "calibration.csv: line 2: spec", "cannot parse spec string 'garbage'")
def _(ctx):
    (ctx.table() / "calibration.csv").write_text("resolution,spec,measured_ms,raw_ms,ref_ratio,rounds,baseline_ms\n"
                                                 "32,garbage,1,1,1,1,1\n")
    return [*BUILD, "--out", str(ctx.table()), "--measurer", "torch-cpu", "--repeats", "3", "--warmup", "0", "--lazy",
            "--calibration-specs", "1"]


@case("export-to-a-full-device", "cannot write /dev/full: No space left on device")
def _(ctx):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    return ["export", "mobilenetv3-small", "--format", "json", "-o", "/dev/full"]


@case("table-baseline-text", "manifest.json", "reference: field 'baseline_ms' is a string")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m["reference"].update(baseline_ms="fast"))
    return _show(ctx)


@case("table-schema-version-2", "schema_version 2", "expected 1")
def _(ctx):
    _edit_json(ctx.table() / "manifest.json", lambda m: m.update(schema_version=2))
    return ["latency", "predict", str(ctx.table()), "mobilenetv3-small", "--resolution", "32"]


@case("table-manifest-missing", "manifest.json does not exist", "not a latency table folder")
def _(ctx):
    (ctx.table() / "manifest.json").unlink()
    return _show(ctx)


@case("table-manifest-is-folder", "manifest.json is a folder")
def _(ctx):
    path = ctx.table() / "manifest.json"
    path.unlink()
    path.mkdir()
    return _show(ctx)


@case("table-folder-is-a-file", "notes.txt", "not a latency table folder")
def _(ctx):
    (ctx.tmp / "notes.txt").write_text("x")
    return ["latency", "show", str(ctx.tmp / "notes.txt")]


@case("table-folder-missing", "nowhere", "not a latency table folder")
def _(ctx):
    return ["latency", "show", str(ctx.tmp / "nowhere")]


@case("predict-on-list-manifest", "manifest.json", "is a list")
def _(ctx):
    (ctx.table() / "manifest.json").write_text("[]")
    return ["latency", "predict", str(ctx.table()), "mobilenetv3-small", "--resolution", "32"]


# --- latency table entries ---------------------------------------------------------------------
@case("entries-truncated-lines", "entries.csv", "holds 7 entries but the manifest records 12")
def _(ctx):
    path = ctx.table() / "entries.csv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-5]))
    return _show(ctx)


@case("entries-torn-last-row", "entries.csv", "holds 11 entries but the manifest records 12")
def _(ctx):
    path = ctx.table() / "entries.csv"
    path.write_text(path.read_text()[:-40])
    return _show(ctx)


@case("entries-negative-median", "entries.csv", "line 7: median_ms = -0.5 is not allowed", "> 0 ms")
def _(ctx):
    _edit_entries(ctx.table() / "entries.csv", 7, "median_ms", "-0.5")
    return _show(ctx)


@case("entries-zero-raw-median", "entries.csv", "line 9: raw_median_ms = 0.0", "> 0 ms")
def _(ctx):
    _edit_entries(ctx.table() / "entries.csv", 9, "raw_median_ms", "0")
    return _show(ctx)


@case("entries-text-median", "entries.csv", "median_ms = 'fast'")
def _(ctx):
    _edit_entries(ctx.table() / "entries.csv", 4, "median_ms", "fast")
    return _show(ctx)


@case("reference-text-value", "reference.csv", "line 3: ref_ms = 'slow' is not a number")
def _(ctx):
    path = ctx.table() / "reference.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].split(",")[0] + ",slow\n"
    path.write_text("".join(lines))
    return [*BUILD, "--out", str(ctx.table()), "--measurer", "torch-cpu", "--repeats", "3", "--warmup", "0"]


@case("entries-bad-kind", "entries.csv", "line 5:", "key.kind = 'ststem' is not allowed")
def _(ctx):
    _edit_entries(ctx.table() / "entries.csv", 5, "kind", "ststem")
    return _show(ctx)


@case("entries-empty-cell", "entries.csv", "line 6 has no value for 'p90_ms'")
def _(ctx):
    _edit_entries(ctx.table() / "entries.csv", 6, "p90_ms", "")
    return _show(ctx)


@case("entries-extra-field", "entries.csv", "line 8 has 26 fields; expected 25")
def _(ctx):
    _edit_entries(ctx.table() / "entries.csv", 8, "madds", "1,2")
    return _show(ctx)


@case("entries-foreign-header", "entries.csv", "header", "does not match the expected columns")
def _(ctx):
    shutil.copy(ctx.table() / "reference.csv", ctx.table() / "entries.csv")
    return _show(ctx)


@case("entries-binary", "entries.csv", "not a text CSV")
def _(ctx):
    (ctx.table() / "entries.csv").write_bytes(b"\xff\xfe" * 100 + b"\n")
    return _show(ctx)


@case("entries-is-a-folder", "entries.csv is a folder")
def _(ctx):
    path = ctx.table() / "entries.csv"
    path.unlink()
    path.mkdir()
    return _show(ctx)


@case("validation-json-list", "validation.json", "is a list; expected a JSON object")
def _(ctx):
    (ctx.table() / "validation.json").write_text("[1]")
    return _show(ctx)


@case("validation-json-missing-key", "validation.json", "field 'spearman' is missing")
def _(ctx):
    _edit_json(ctx.table() / "validation.json", lambda r: r.pop("spearman"))
    return _show(ctx)


# --- latency build -----------------------------------------------------------------------------
BUILD = ["latency", "build", "--space", "mnasnet", "--resolution", "32", "--quiet"]


@case("build-entries-without-manifest", "holds entries.csv", "no manifest.json", "cannot be checked")
def _(ctx):
    (ctx.table() / "manifest.json").unlink()
    return [*BUILD, "--out", str(ctx.table())]


@case("build-out-is-a-file", "--out", "is a file")
def _(ctx):
    (ctx.tmp / "f").write_text("x")
    return [*BUILD, "--out", str(ctx.tmp / "f")]


@case("build-command-unknown-placeholder", "command template", "unknown placeholder", "{foo}")
def _(ctx):
    return [*BUILD, "--out", str(ctx.tmp / "t"), "--measurer", "command", "--command", "run {model} {foo}"]


@case("build-command-no-model", "has no {model} placeholder")
def _(ctx):
    return [*BUILD, "--out", str(ctx.tmp / "t"), "--measurer", "command", "--command", "run model.onnx"]


@case("build-command-bad-unit", "command unit = 'parsecs'")
def _(ctx):
    return [*BUILD, "--out", str(ctx.tmp / "t"), "--measurer", "command", "--command", "x {model}", "--unit", "parsecs"]


@case("build-command-bad-pattern", "command pattern", "not a valid regular expression")
def _(ctx):
    return [*BUILD, "--out", str(ctx.tmp / "t"), "--measurer", "command", "--command", "x {model}", "--pattern", "("]


for _option, _value, _says in [("--calibration-specs", "0", "--calibration-specs = 0 is not allowed"),
                                ("--seed", "-1", "--seed = -1 is not allowed"),
                                ("--repeats", "0", "repeats = 0 is not allowed"),
                                ("--threads", "0", "intra_op_threads = 0 is not allowed"),
                                ("--warmup", "-1", "warmup = -1 is not allowed"),
                                ("--batch-keys", "0", "batch_keys = 0 is not allowed"),
                                ("--calibration-rounds", "0", "calibration_rounds = 0 is not allowed"),
                                ("--max-passes", "0", "max_passes = 0 is not allowed")]:
    case(f"build-option{_option}", _says)(
        lambda ctx, option=_option, value=_value: [*BUILD, "--out", str(ctx.tmp / "t"), option, value])


@case("build-resolution-0", "resolution = 0 is not allowed")
def _(ctx):
    return ["latency", "build", "--space", "mnasnet", "--resolution", "0", "--out", str(ctx.tmp / "t")]


@case("build-unknown-space", "unknown space 'nope'")
def _(ctx):
    return ["latency", "build", "--space", "nope", "--resolution", "32", "--out", str(ctx.tmp / "t")]


# --- SPEC and spec commands --------------------------------------------------------------------
for _width in ("inf", "nan", "0", "-1", "100"):
    case(f"width-{_width}", f"--width = {float(_width)}", "is not allowed")(
        lambda ctx, width=_width: ["show", "mobilenetv3-small", "--width", width])


@case("spec-file-is-folder", "spec file", "is a folder")
def _(ctx):
    return ["show", str(ctx.tmp)]


@case("spec-file-binary", "spec file", "is not text")
def _(ctx):
    (ctx.tmp / "s.json").write_bytes(b"\xff\xfe\x00")
    return ["show", str(ctx.tmp / "s.json")]


@case("spec-file-list", "cannot parse spec string")
def _(ctx):
    (ctx.tmp / "s.json").write_text("[1, 2]")
    return ["show", str(ctx.tmp / "s.json")]


@case("spec-file-empty-object", "spec file", "has keys []")
def _(ctx):
    (ctx.tmp / "s.json").write_text("{}")
    return ["show", str(ctx.tmp / "s.json")]


@case("spec-unknown-name", "unknown spec 'mobilenetv9'")
def _(ctx):
    return ["show", "mobilenetv9"]


@case("export-to-a-folder", "-o", "is a folder")
def _(ctx):
    return ["export", "mobilenetv3-small", "--format", "json", "-o", str(ctx.tmp)]


@case("export-into-missing-folder", "output folder", "does not exist")
def _(ctx):
    return ["export", "mobilenetv3-small", "--format", "json", "-o", str(ctx.tmp / "no" / "x.json")]


@case("space-sample-n-0", "-n = 0 is not allowed")
def _(ctx):
    return ["space", "sample", "--seed", "0", "-n", "0"]


@case("space-sample-resolution-0", "resolution = 0 is not allowed")
def _(ctx):
    return ["space", "sample", "--seed", "0", "--resolution", "0"]


# --- demo --------------------------------------------------------------------------------------
@case("demo-negative-epochs", "--epochs = -1 is not allowed")
def _(ctx):
    return ["demo", "--epochs", "-1", "--out", str(ctx.tmp / "demo")]


@case("demo-out-is-a-file", "--out", "is a file")
def _(ctx):
    (ctx.tmp / "f").write_text("x")
    return ["demo", "--out", str(ctx.tmp / "f")]


# --- train: new runs ---------------------------------------------------------------------------
def _train(ctx: Ctx, *options: str) -> list[str]:
    return ["train", str(ctx.spec()), *FAST, *options, "--out", str(ctx.tmp / "runs")]


for _option, _value, _says in [("--epochs", "-1", "train.epochs = -1"), ("--batch-size", "0", "train.batch_size = 0"),
                               ("--lr", "0", "train.lr = 0.0"), ("--lr", "nan", "train.lr = nan"),
                               ("--label-smoothing", "1.5", "train.label_smoothing = 1.5"),
                               ("--ema-decay", "2", "train.ema_decay = 2.0"),
                               ("--weight-decay", "-1", "train.weight_decay = -1.0"),
                               ("--threads", "0", "train.threads = 0"), ("--seed", "-3", "train.seed = -3"),
                               ("--latency-repeats", "0", "--latency-repeats = 0"),
                               ("--split-seed", "-1", "--split-seed = -1"), ("--width", "inf", "--width = inf"),
                               ("--resolution", "0", "--resolution = 0")]:
    case(f"train-option{_option}={_value}", _says, "not allowed")(
        lambda ctx, option=_option, value=_value: _train(ctx, option, value))


@case("train-out-is-a-file", "--out", "is a file")
def _(ctx):
    (ctx.tmp / "f").write_text("x")
    return ["train", str(ctx.spec()), *FAST, "--out", str(ctx.tmp / "f")]


@case("train-npz-garbage", "npz", "g.npz", "is not an .npz archive")
def _(ctx):
    (ctx.tmp / "g.npz").write_bytes(b"this is not numpy")
    return ["train", str(ctx.spec()), "--data", f"npz:{ctx.tmp / 'g.npz'}", "--out", str(ctx.tmp / "runs")]


@case("train-npz-is-folder", "npz file", "is a folder; expected a file")
def _(ctx):
    return ["train", str(ctx.spec()), "--data", f"npz:{ctx.tmp}", "--out", str(ctx.tmp / "runs")]


@case("train-npz-object-array", "npz", "malformed", "allow_pickle=False")
def _(ctx):
    np.savez(ctx.tmp / "o.npz", x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    return ["train", str(ctx.spec()), "--data", f"npz:{ctx.tmp / 'o.npz'}", "--out", str(ctx.tmp / "runs")]


@case("train-imagefolder-is-file", "image folder", "is a file; expected a folder")
def _(ctx):
    (ctx.tmp / "f").write_text("x")
    return ["train", str(ctx.spec()), "--data", f"imagefolder:{ctx.tmp / 'f'}", "--out", str(ctx.tmp / "runs")]


@case("train-cifar-missing", "CIFAR-10 folder", "does not exist")
def _(ctx):
    return ["train", str(ctx.spec()), "--data", f"cifar10:{ctx.tmp / 'none'}", "--out", str(ctx.tmp / "runs")]


@case("train-unknown-data", "unknown data set 'mnist'")
def _(ctx):
    return ["train", str(ctx.spec()), "--data", "mnist", "--out", str(ctx.tmp / "runs")]


if not torch.cuda.is_available():
    @case("train-cuda-without-gpu", "device = 'cuda' is not available")
    def _(ctx):
        return ["train", str(ctx.spec()), *FAST[:-8], "--device", "cuda", "--out", str(ctx.tmp / "runs")]


# --- train --resume ----------------------------------------------------------------------------
@case("resume-manifest-list", "manifest.json", "is a list; expected a JSON object")
def _(ctx):
    (ctx.run() / "manifest.json").write_text("[]")
    return _resume(ctx)


@case("resume-manifest-truncated", "manifest.json", "not valid JSON")
def _(ctx):
    path = ctx.run() / "manifest.json"
    path.write_text(path.read_text()[:150])
    return _resume(ctx)


@case("resume-manifest-without-data", "manifest.json", "field 'data' is missing")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m.pop("data"))
    return _resume(ctx)


@case("resume-data-without-resolution", "manifest.json: data", "field 'resolution' is missing")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m["data"].pop("resolution"))
    return _resume(ctx)


@case("resume-config-unknown-key", "manifest.json: config", "unknown keys ['epoks']")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m["config"].update(epoks=3))
    return _resume(ctx)


@case("resume-config-bad-value", "manifest.json: config", "train.lr = -1")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m["config"].update(lr=-1))
    return _resume(ctx)


@case("resume-arch-garbage", "manifest.json: arch")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m.update(arch="r16|nonsense"))
    return _resume(ctx)


@case("resume-latency-repeats-0", "manifest.json", "latency.repeats = 0")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m["latency"].update(repeats=0))
    return _resume(ctx)


@case("resume-status-bogus", "manifest.json", "field 'status' = 'paused' is not one of")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m.update(status="paused"))
    return _resume(ctx)


@case("resume-foreign-job", "run folder of mobilenas search, not of mobilenas train")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m.update(job="search"))
    return _resume(ctx)


@case("resume-checkpoint-truncated", "checkpoint", "checkpoint.pt", "truncated, corrupt")
def _(ctx):
    path = ctx.run() / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:1000])
    return _resume(ctx)


@case("resume-checkpoint-garbage", "checkpoint.pt", "truncated, corrupt or not a torch checkpoint")
def _(ctx):
    (ctx.run() / "checkpoint.pt").write_bytes(b"garbage" * 50)
    return _resume(ctx)


@case("resume-checkpoint-pickled-object", "checkpoint.pt", "never run pickled code")
def _(ctx):
    torch.save({"format_version": 1, "x": Ctx}, ctx.run() / "checkpoint.pt")
    return _resume(ctx)


@case("resume-checkpoint-of-another-run", "checkpoint.pt", "its config differs", "another run")
def _(ctx):
    path = ctx.run() / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    state["config"]["lr"] = 0.5
    torch.save(state, path)
    return _resume(ctx)


@case("resume-not-a-folder", "--resume", "is not a folder")
def _(ctx):
    (ctx.tmp / "f").write_text("x")
    return ["train", "--resume", str(ctx.tmp / "f")]


@case("resume-finished-run", "already finished")
def _(ctx):
    _edit_json(ctx.run() / "manifest.json", lambda m: m.update(status="finished"))
    return _resume(ctx)


@case("resume-with-spec", "drop SPEC")
def _(ctx):
    return ["train", "mobilenetv3-large", "--resume", str(ctx.run())]


@case("resume-with-epochs", "drop --epochs")
def _(ctx):
    return ["train", "--epochs", "9", "--resume", str(ctx.run())]


@pytest.mark.parametrize("name, prepare, fragments", CASES, ids=[c[0] for c in CASES])
def test_careless_input_is_one_line_exit_2(name, prepare, fragments, tmp_path, run_template, table_template, capsys):
    argv = prepare(Ctx(tmp_path, run_template, table_template))
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, f"exit {code}; stderr: {err}"
    lines = err.splitlines()
    assert len(lines) == 1, err
    command = " ".join(a for a in argv[:2] if not a.startswith("-") and "/" not in a and a.islower())
    assert lines[0].startswith("mobilenas "), err
    assert ": error: " in lines[0] and "Traceback" not in err and "None" not in lines[0].split(":")[0], err
    assert lines[0].split(": error: ")[0].startswith(f"mobilenas {argv[0]}"), (command, err)
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def test_resume_leaves_the_run_untouched_when_refused(tmp_path, run_template, capsys):
    ctx = Ctx(tmp_path, run_template, tmp_path / 'no-table')
    run = ctx.run()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["train", "--epochs", "9", "--resume", str(run)]) == 2
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_full_disk_is_one_line_and_loses_nothing(tmp_path, run_template, capsys, monkeypatch):
    ctx = Ctx(tmp_path, run_template, tmp_path / 'no-table')
    run = ctx.run()
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(_resume(ctx)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json" in err[0]
    assert "cannot write" in err[0] and "No space left on device" in err[0] and "unchanged" in err[0]
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_latency_build_error_prefix_is_the_command_not_the_template(tmp_path, capsys):
    argv = ["latency", "build", "--space", "mnasnet", "--resolution", "32", "--out", str(tmp_path / "t"),
            "--measurer", "command", "--command", "adb shell {model} {oops}"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("mobilenas latency build: error: command template")


def test_space_sample_into_a_closed_pipe_is_quiet(capsys, monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def fileno(self):
            raise ValueError("no file descriptor")

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["space", "sample", "--seed", "0", "-n", "50"]) == 0
    assert capsys.readouterr().err == ""


def test_a_measure_command_that_does_not_exist_is_one_line(tmp_path, capsys):
    argv = ["latency", "build", "--space", "mnasnet", "--resolution", "32", "--out", str(tmp_path / "t"), "--quiet",
            "--measurer", "command", "--command", "nosuchcommand-xyz {model}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mobilenas latency build: error: measure command exited with 127")
    assert "nosuchcommand-xyz" in err[0] and "not found" in err[0]


def test_a_calibration_of_one_spec_prints_no_nan():
    from mobilenas.cli_latency import _loo_text

    one = {"features": ["sum_ms"], "coef": [1.0], "intercept_ms": 0.2, "n_specs": 1, "loo": {}}
    assert _loo_text(one) == "LOO n/a (1 specs: fewer than 6 fit only an overhead)"
    assert _loo_text({**one, "n_specs": 8, "loo": {"sum_ms": 2.5}}) == "LOO 2.50%"


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "abc"], "mobilenas train: error: argument --epochs: invalid int value: 'abc'"),
    (["latency", "build", "--space", "mnasnet"], "mobilenas latency build: error: the following arguments are required"),
    (["latency", "show"], "mobilenas latency show: error: the following arguments are required: table"),
    (["nope"], "mobilenas: error: argument COMMAND: invalid choice: 'nope'"),
    (["train", "--device", "tpu"], "mobilenas train: error: argument --device: invalid choice: 'tpu'"),
])
def test_usage_errors_are_one_line_without_the_usage_block(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message) and err[0].endswith("--help)")
