"""``--platform`` on search, netadapt and run: the platform is recorded in the job's config, the
table a job builds is measured with the platform's settings and filed in it, a later job uses
that table (drift-checked, not trusted), and a table of other settings is refused. Measuring is
faked (tests.platform_fakes); no trial is trained."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from latency.platforms import Platform, get_platform, remove_platform, table_key
from mobilenas.cli import build_parser, main
from nas.search import SearchConfig
from netadapt.job import JobSetup
from pipeline.config import PipelineConfig
from search_spaces.encoding import spec_to_dict
from search_spaces.registry import SPACES
from tests.netadapt.loop_helpers import loop_spec
from tests.fast_tables import build_small_table
from tests.platform_fakes import FAKE_SETTINGS, small_lazy_tables, use_fake_measurer


@pytest.fixture
def platform(tmp_path, monkeypatch) -> Platform:
    monkeypatch.setenv("MOBILENAS_HOME", str(tmp_path / "home"))
    small_lazy_tables(monkeypatch)
    return use_fake_measurer(monkeypatch)


def _measured_with(folder: Path) -> dict:
    recorded = json.loads((Path(folder) / "manifest.json").read_text())["measurer"]
    return {"measurer": recorded["measurer"], **{k: recorded[k] for k in FAKE_SETTINGS}}


WANTED = {"measurer": "torch-cpu", **FAKE_SETTINGS}


def _search(out: Path, platform: Platform, monkeypatch):
    """A search job run up to its trials (none run): the run folder and the table it priced with."""
    from mobilenas.cli_search import config_from_args
    from nas.job import SearchJob

    monkeypatch.setattr(SearchJob, "_run_trials", lambda self, driver, evaluator, stop: None)
    monkeypatch.setattr("nas.job.write_outputs", lambda driver, path: {"run_dir": str(path)})
    args = build_parser().parse_args(["search", "--data", "digits", "--target-ms", "0.5", "--strategy", "random",
                                      "--platform", platform.name, "--out", str(out)])
    job = SearchJob(config_from_args(args), out=out)
    job.run()
    return job.folder


def test_search_records_the_platform_builds_its_table_with_it_and_files_it(tmp_path, platform, monkeypatch):
    folder = _search(tmp_path / "runs", platform, monkeypatch)
    assert folder.manifest["config"]["platform"] == platform.record()
    own = folder.path / "latency"
    assert _measured_with(own) == WANTED and folder.manifest["request"]["table_trusted"] is True
    key = table_key("mnasnet", 32, 1, 10)
    assert get_platform(platform.name).tables == {key: str(own.resolve())}

    later = _search(tmp_path / "other-runs", platform, monkeypatch)  # the platform's table, drift-checked
    assert later.manifest["request"] == {"table": str(own.resolve()), "on_drift": "error", "table_trusted": False}
    assert not (later.path / "latency").exists()

    remove_platform(platform.name)  # the run folder alone rebuilds the job
    config = SearchConfig.from_dict(later.manifest["config"])
    assert Platform.from_record(config.platform).record() == platform.record()


def test_configs_of_earlier_versions_have_no_platform():
    assert SearchConfig.from_dict({"target_ms": 1.0}).platform is None
    assert PipelineConfig.from_dict({"data": "digits", "target_ms": 1.0}).platform is None
    setup = json.loads(json.dumps(_setup().to_dict()))
    setup.pop("platform")
    assert JobSetup.from_dict(setup).platform is None


def _setup() -> JobSetup:
    from netadapt.loop import NetAdaptConfig

    return JobSetup(NetAdaptConfig(target_ms=1.0), "s", "s", "digits", 0, "t", "error", 1, None, None, 1)


def test_a_table_of_other_settings_is_refused_with_the_platform(tmp_path, platform, capsys):
    table = str(build_small_table(tmp_path / "table"))  # measured with torch-cpu settings
    for argv in (["search", "--data", "digits", "--target-ms", "1"], ["run", "--data", "digits", "--target-ms", "1"]):
        code = main([*argv, "--platform", "ort-cpu-2t", "--table", table, "--out", str(tmp_path / "refused")])
        err = capsys.readouterr().err
        assert code == 2 and "not measured with platform 'ort-cpu-2t'" in err and "intra_op_threads" in err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()
    code = main(["search", "--data", "digits", "--target-ms", "1", "--platform", "nope", "--out", str(tmp_path / "r")])
    assert code == 2 and "platform 'nope' is not known" in capsys.readouterr().err


def _netadapt_args(tmp_path: Path, *extra: str):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(spec_to_dict(loop_spec().replace(resolution=32))))
    return build_parser().parse_args(["netadapt", str(spec), "--target-ms", "1", "--data", "digits", "--workers", "1",
                                      "--out", str(tmp_path / "runs"), *extra])


def test_netadapt_builds_a_table_per_platform_with_its_measurer_and_files_it(tmp_path, platform, monkeypatch):
    from mobilenas import cli_netadapt

    monkeypatch.setattr(cli_netadapt, "check_target", lambda setup, predict_ms: (2.0, 0.5))
    setup = cli_netadapt.prepare(_netadapt_args(tmp_path, "--platform", platform.name), lambda message: None)
    assert setup.platform == platform.record() and setup.table_trusted
    table = Path(setup.table)
    assert platform.name in table.name and _measured_with(table) == WANTED
    default = cli_netadapt._choose_table(_netadapt_args(tmp_path), loop_spec().replace(resolution=32, in_channels=1), None)
    assert default[0] != table and default[1]
    assert str(table.resolve()) in get_platform(platform.name).tables.values()

    again = cli_netadapt.prepare(_netadapt_args(tmp_path, "--platform", platform.name), lambda message: None)
    assert Path(again.table) == table.resolve() and not again.table_trusted
    assert JobSetup.from_dict(json.loads(json.dumps(again.to_dict()))).platform == platform.record()


def test_the_pipeline_table_stage_builds_with_the_platform_and_files_the_table(tmp_path, platform):
    from types import SimpleNamespace

    from pipeline import stages
    from pipeline.config import table_trusted

    config = PipelineConfig(data="digits", target_ms=1.0, space="mnasnet", platform=platform.record())
    run = SimpleNamespace(path=tmp_path / "run", config=config, say=lambda message: None)
    result = stages.stage_table(run)
    assert _measured_with(result["folder"]) == WANTED and table_trusted(config, result)
    assert get_platform(platform.name).tables == {table_key("mnasnet", 32, 1, 10): str(Path(result["folder"]).resolve())}
    later = stages.stage_table(SimpleNamespace(path=tmp_path / "later", config=config, say=lambda message: None))
    assert Path(later["folder"]) == Path(result["folder"]).resolve() and not table_trusted(config, later)


def test_netadapt_table_space_is_a_registered_space(monkeypatch):
    base = _setup().to_dict()
    assert JobSetup.from_dict({k: v for k, v in base.items() if k != "table_space"}).table_space == "mnasnet"
    with pytest.raises(ValueError, match=r"--table-space 'toy' is not known; expected one of \['mnasnet'"):
        JobSetup.from_dict({**base, "table_space": "toy"})
    monkeypatch.setitem(SPACES, "toy", SPACES["mnasnet"])
    assert JobSetup.from_dict({**base, "table_space": "toy"}).table_space == "toy"
