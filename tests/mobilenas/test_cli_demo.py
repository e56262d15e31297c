"""`mobilenas demo` writes every export of the adapted MobileNetV3-Small and space samples."""
import json

from mobilenas.cli import main
from search_spaces.encoding import spec_from_json


def test_demo_writes_run_folder(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "run"), "--data", "digits", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"mobilenetv3-small.json", "mobilenetv3-small.onnx", "mobilenetv3-small.timm",
            "mobilenetv3-small.md", "space_samples.jsonl"} <= files
    spec = spec_from_json((tmp_path / "run" / "mobilenetv3-small.json").read_text())
    assert (spec.resolution, spec.in_channels, spec.num_classes) == (32, 1, 10)
    assert len((tmp_path / "run" / "space_samples.jsonl").read_text().splitlines()) == 3
    assert "5,483,032" in out and "test top-1" in out
    train_runs = [p for p in (tmp_path / "run").iterdir() if p.is_dir()]
    assert len(train_runs) == 1 and (train_runs[0] / "model.onnx").is_file()
    assert json.loads((train_runs[0] / "manifest.json").read_text())["status"] == "finished"
