"""``mobilenas search``: options refused before any work, SPEC accepted in every form the tools
print, and (slow, ray) a real search end to end and a SIGKILLed search resumed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobilenas.cli import build_parser, main
from mobilenas.spec_args import resolve_spec, spec_from_args
from search_spaces.encoding import format_spec, parse_spec, spec_to_json
from search_spaces.resolve import spec_from_text
from tests.helpers import sampled_specs

ROOT = Path(__file__).resolve().parents[2]
MOBILENAS = str(Path(sys.executable).parent / "mobilenas")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    ([], "--target-ms is required"),
    (["--target-ms", "1", "--trials", "0"], "--trials = 0"),
    (["--target-ms", "0"], "target_ms"),
    (["--target-ms", "1", "--data", "mnist9k"], "unknown data set 'mnist9k'"),
    (["--target-ms", "1", "--asha"], "--asha needs --epochs >= 2"),
    (["--target-ms", "1", "--w", "0.1"], "expected a finite number <= 0"),
    (["--target-ms", "1", "--concurrency", "0"], "--concurrency = 0"),
    (["--target-ms", "1", "--address", "not an address"], "--address"),
    (["--target-ms", "1", "--table", "no-such-table"], "--table 'no-such-table'"),
    (["--target-ms", "1", "--strategy", "evolution", "--strategy-config", '{"population": 3}'], "unknown evolution settings"),
    (["--resume", "no-such-run"], "is not a folder"),
    (["--resume", ".", "--trials", "3"], "drop --trials"),
])
def test_bad_options_fail_in_one_line_before_any_work(tmp_path, capsys, argv, message):
    code, out, err = run_cli(capsys, "search", *argv, "--out", str(tmp_path / "runs"))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_folder_of_another_job_is_refused(tmp_path, capsys):
    from storage.runfolder import RunFolder

    train = RunFolder.create(tmp_path, job="train", slug="x", seed=0, config={})
    code, _, err = run_cli(capsys, "search", "--resume", str(train.path))
    assert code == 2 and "not of mobilenas search" in err


@pytest.fixture()
def sample_line(capsys):
    assert main(["space", "sample", "--seed", "3", "-n", "1", "--resolution", "32", "--classes", "1000"]) == 0
    return capsys.readouterr().out.strip()


def test_a_space_sample_line_is_a_spec_for_show_export_predict_and_train(tmp_path, capsys, sample_line):
    expected = parse_spec(json.loads(sample_line)["arch"])
    code, out, _ = run_cli(capsys, "show", sample_line, "--json")
    assert code == 0 and json.loads(out)["arch"] == format_spec(expected)
    code, _, err = run_cli(capsys, "export", sample_line, "--format", "json", "-o", str(tmp_path / "s.json"))
    assert code == 0, err
    (tmp_path / "line.json").write_text(sample_line + "\n")
    code, _, err = run_cli(capsys, "export", str(tmp_path / "line.json"), "--format", "table", "-o", str(tmp_path / "s.md"))
    assert code == 0, err
    predict = build_parser().parse_args(["latency", "predict", "TABLE", sample_line, "--json"])
    assert spec_from_args(predict) == expected                      # what latency predict resolves with
    assert resolve_spec(sample_line) == expected                     # what train and netadapt resolve with
    assert resolve_spec(str(tmp_path / "line.json")) == expected


def test_every_spec_form_a_search_writes_is_accepted(tmp_path):
    spec = sampled_specs(1, seed=5)[0]
    (tmp_path / "best.json").write_text(spec_to_json(spec))
    (tmp_path / "summary.json").write_text(json.dumps({"run_dir": "x", "best_spec": format_spec(spec)}))
    for text in (format_spec(spec), (tmp_path / "best.json").read_text(), (tmp_path / "summary.json").read_text()):
        assert spec_from_text(text) == spec
    assert resolve_spec(str(tmp_path / "best.json")) == spec == resolve_spec(str(tmp_path / "summary.json"))


def test_a_json_object_without_a_spec_is_refused_naming_the_keys():
    with pytest.raises(ValueError, match=r"has keys \['a'\]"):
        spec_from_text('{"a": 1}')
    with pytest.raises(ValueError, match="several JSON lines"):
        spec_from_text('{"arch": "x"}\n{"arch": "y"}')


# --- slow: real searches (Ray, proxy training, latency measured on this machine) -------------

def tiny_table(folder: Path) -> Path:
    """A lazy table for the digits shape with few repeats, so that missing layers measure fast."""
    from latency.lazy import ensure_table
    from latency.measurers import OrtMeasurer, OrtSettings

    ensure_table(folder, space="mnasnet", resolution=32, in_channels=1, num_classes=10, calibration_specs=3,
                 calibration_rounds=1, measurer=OrtMeasurer(OrtSettings(warmup=2, repeats=5)))
    return folder


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return tiny_table(tmp_path_factory.mktemp("search-table") / "t")


def search_env(tmp_path):
    """HOME and the cache inside tmp_path: Ray must write nothing outside the run folder (matplotlib's
    font cache and ONNX Runtime's device id are the only files libraries put under HOME)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "MOBILENAS_CACHE": str(tmp_path / "cache")}


def search_command(out, table, *extra):
    return [MOBILENAS, "search", "--data", "digits", "--target-ms", "0.5", "--strategy", "random",
            "--train-subset", "128", "--table", str(table), "--on-drift", "force", "--out", str(out), *extra]


@pytest.mark.slow
@pytest.mark.ray
def test_search_end_to_end_writes_every_output_and_cleans_up(tmp_path, table):
    from storage.processes import processes_using

    done = subprocess.run(search_command(tmp_path / "runs", table, "--trials", "3", "--json"), capture_output=True,
                          text=True, env=search_env(tmp_path), timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    run = Path(result["run_dir"])
    assert result["trials"] == 3 and set(result) >= {"best_spec", "best_reward", "best_top1", "best_latency_ms"}
    for name in ("manifest.json", "trials.csv", "pareto.csv", "pareto.png", "best.json", "best.md", "summary.json"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["latency"]["pricing"] == "as trained"
    assert manifest["latency"]["priced_shape"] == {"resolution": 32, "in_channels": 1, "num_classes": 10}
    assert "drift" in manifest["latency"] and manifest["fingerprint"]
    assert "search: 3/3 trials | best reward" in done.stderr and "using the latency table" in done.stderr
    written = [str(p.relative_to(tmp_path / "home")) for p in (tmp_path / "home").rglob("*")]
    assert not [p for p in written if "ray" in p.lower()], written   # no ~/ray_results, no Ray auth token
    assert set(written) <= {".cache", ".config", ".cache/matplotlib", ".config/matplotlib"} | {
        p for p in written if p.startswith((".cache/matplotlib/", ".cache/Microsoft"))}  # font cache, ORT device id
    assert not processes_using(run.resolve() / "ray_tmp")
    shown = subprocess.run([MOBILENAS, "show", str(run / "best.json"), "--json"], capture_output=True, text=True)
    assert json.loads(shown.stdout)["arch"] == result["best_spec"]


def wait_for_rows(csv: Path, rows: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if csv.is_file() and len(csv.read_text().splitlines()) - 1 >= rows:
            return
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    raise AssertionError(f"{csv} did not reach {rows} rows in {timeout} s")


@pytest.mark.slow
@pytest.mark.ray
def test_a_sigkilled_search_resumes_without_losing_or_repeating_a_trial(tmp_path, table):
    from nas.tune import end_cluster_processes
    from storage.processes import processes_using

    out, env = tmp_path / "runs", search_env(tmp_path)
    process = subprocess.Popen(search_command(out, table, "--trials", "6"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        run = None
        deadline = time.monotonic() + 300
        while run is None and time.monotonic() < deadline:
            found = list(out.glob("*/manifest.json"))
            run = found[0].parent if found else None
            time.sleep(0.2)
        wait_for_rows(run / "trials.csv", 2, process, timeout=400)
        os.kill(process.pid, signal.SIGKILL)   # mid-search: other trials are in flight
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    before = (run / "trials.csv").read_text().splitlines()
    state = json.loads((run / "search_state.json").read_text())
    try:
        resumed = subprocess.run([MOBILENAS, "search", "--resume", str(run), "--json"], capture_output=True,
                                 text=True, env=env, timeout=600, cwd=ROOT)
    finally:  # whatever happens, nothing of the killed run's cluster outlives the test
        leftover = end_cluster_processes(run.resolve() / "ray_tmp", grace_s=0.0)
    assert resumed.returncode == 0, resumed.stderr
    after = (run / "trials.csv").read_text().splitlines()
    assert after[:len(before)] == before                                  # nothing lost
    proposals = [line.split(",")[2] for line in after[1:]]
    assert len(proposals) == 6 and len(set(proposals)) == 6               # nothing repeated
    in_flight = set(state["pending"])
    assert in_flight <= set(proposals)                                    # in-flight proposals re-run
    assert "resumed:" in resumed.stderr and json.loads(resumed.stdout)["trials"] == 6
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["resumes"] == 1
    assert leftover == 0 and not processes_using(run.resolve() / "ray_tmp")  # the resume ended the killed run's agents
