"""`mobilenas show/export/space` end to end, and their error paths (one line, exit 2)."""
import json

import numpy as np
import onnxruntime as ort
import pytest

from mobilenas.cli import main
from search_spaces.encoding import format_spec, spec_from_json, spec_to_json
from search_spaces.reference import reference_spec


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_prints_paper_table_and_counts(capsys):
    code, out, _ = run(capsys, "show", "mobilenetv3-large")
    assert code == 0
    assert "| 112²x16 | bneck 3x3 | 64 | 24 | - | RE | 2 |" in out
    assert "5,483,032" in out and "216.59 M" in out


def test_show_json_has_integer_counts_and_canonical_string(capsys):
    code, out, _ = run(capsys, "show", "mobilenetv3-small", "--json")
    data = json.loads(out)
    assert code == 0 and data["params"] == 2_542_856 and isinstance(data["madds"], int)
    assert data["arch"] == format_spec(reference_spec("mobilenetv3-small"))


def test_show_options_adapt_spec(capsys):
    _, out, _ = run(capsys, "show", "mobilenetv3-small", "--resolution", "32", "--classes", "10",
                    "--in-channels", "1", "--width", "0.5", "--json")
    data = json.loads(out)
    assert data["arch"].startswith("r32_i1_n10|stem_k3_s2_c8_hs")


def test_show_reads_spec_json_file_and_string(capsys, tmp_path):
    spec = reference_spec("mnasnet-a1", resolution=64)
    path = tmp_path / "spec.json"
    path.write_text(spec_to_json(spec))
    _, out_file, _ = run(capsys, "show", str(path), "--json")
    _, out_string, _ = run(capsys, "show", format_spec(spec), "--json")
    assert json.loads(out_file)["arch"] == json.loads(out_string)["arch"] == format_spec(spec)


@pytest.mark.parametrize("fmt", ["json", "timm", "table", "onnx"])
def test_export_formats(capsys, tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    code, _, _ = run(capsys, "export", "mobilenetv3-small", "--resolution", "32", "--classes", "10", "--format", fmt, "-o", str(path))
    assert code == 0 and path.stat().st_size > 0
    spec = reference_spec("mobilenetv3-small", resolution=32, num_classes=10)
    if fmt == "json":
        assert spec_from_json(path.read_text()) == spec
    elif fmt == "timm":
        assert json.loads(path.read_text())[0] == ["ds_r1_k3_s2_e1_c16_se0.25_nre"]
    elif fmt == "table":
        assert path.read_text().startswith("| input | operator |")
    else:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.run(None, {"input": np.zeros((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


def test_space_sample_prints_json_lines_seeded(capsys):
    _, out1, _ = run(capsys, "space", "sample", "--seed", "3", "-n", "4", "--resolution", "32", "--classes", "10")
    _, out2, _ = run(capsys, "space", "sample", "--seed", "3", "-n", "4", "--resolution", "32", "--classes", "10")
    lines = out1.strip().splitlines()
    assert out1 == out2 and len(lines) == 4
    assert all(json.loads(line)["arch"].startswith("r32_i3_n10|") for line in lines)


def test_space_info(capsys):
    code, out, _ = run(capsys, "space", "info")
    assert code == 0 and "49 decisions" in out and "distinct architectures" in out


@pytest.mark.parametrize("argv, message", [
    (["show", "mobilenetv4"], "unknown spec 'mobilenetv4'"),
    (["show", "missing.json"], "does not exist"),
    (["show", "mobilenetv3-small", "--width", "0"], "width multiplier"),
    (["show", "mobilenetv3-small", "--resolution", "0"], "arch.resolution"),
    (["export", "mobilenetv3-small", "--format", "json", "-o", "/nonexistent/dir/x.json"], "does not exist"),
    (["space", "sample", "--seed", "1", "-n", "0"], "-n = 0"),
    (["space", "sample", "--seed", "1", "--space", "nope"], "argument --space: invalid choice: 'nope'"),
    (["space", "sample", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
])
def test_errors_are_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_malformed_and_invalid_spec_files(capsys, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    invalid = tmp_path / "invalid.json"
    data = json.loads(spec_to_json(reference_spec("mobilenetv3-small")))
    data["blocks"][0]["stride"] = 3
    invalid.write_text(json.dumps(data))
    for path, message in ((bad_json, "malformed"), (invalid, "block.stride = 3")):
        code, _, err = run(capsys, "show", str(path))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
