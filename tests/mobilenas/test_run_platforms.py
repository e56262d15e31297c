"""``mobilenas run`` naming several platforms: the recipe per platform with the run's own settings,
one supernet shared, the matrix in the report (the job of ``platforms compare --method search``),
resumed with ``mobilenas run --resume``."""
from __future__ import annotations

import pytest

from mobilenas.cli import build_parser, main
from mobilenas.cli_run import DEFAULTS
from mobilenas.measurer_args import platform_from_args
from mobilenas.run_platforms import comparison_settings, names_several, open_comparison

TWO = ["--platform", "ort-cpu-1t", "--platform", "ort-cpu-int8"]


def _args(*argv: str):
    return build_parser().parse_args(["run", *argv])


def test_several_platforms_open_a_search_comparison_with_the_runs_settings(tmp_path):
    args = _args(*TWO, "--data", "digits", "--seed", "3", "--budget", "small", "--target-like", "mobilenetv3-small",
                 "--target-scale", "1.1", "--threads", "1", "--netadapt-close-on", "predicted", "--out", str(tmp_path))
    assert names_several(args)
    folder, config = open_comparison(args, DEFAULTS)
    assert folder.manifest["job"] == "platforms" and config.names == ("ort-cpu-1t", "ort-cpu-int8")
    assert (config.method, config.data, config.seed, config.budget, config.target_scale, config.threads,
            config.close_on, config.reward) == ("search", "digits", 3, "small", 1.1, 1, "predicted", "hard")
    resumed = _args("--resume", str(folder.path))
    assert names_several(resumed)  # a run folder for several platforms resumes as one: opened as the comparison
    with pytest.raises(ValueError, match="is still running"):  # (this process holds it)
        open_comparison(resumed, DEFAULTS)
    assert not names_several(_args("--resume", str(tmp_path / "no-such-run")))


def test_one_platform_is_still_one_run():
    args = _args("--platform", "ort-cpu-int8")
    assert not names_several(args) and platform_from_args(args).name == "ort-cpu-int8"
    assert not names_several(_args()) and platform_from_args(_args()) is None


@pytest.mark.parametrize("extra, flag", [(["--target-ms", "0.5"], "--target-ms"), (["--strategy", "evolution"], "--strategy"),
                                         (["--evaluator", "proxy"], "--evaluator proxy"), (["--w", "-0.07"], "--w")])
def test_options_that_do_not_apply_per_platform_are_refused_naming_them(extra, flag):
    with pytest.raises(ValueError, match=f"does not take {flag}"):
        comparison_settings(_args(*TWO, *extra), DEFAULTS)


def test_a_platform_named_twice_is_refused_naming_it():
    with pytest.raises(ValueError, match="--platform ort-cpu-1t is given more than once"):
        comparison_settings(_args(*TWO, "--platform", "ort-cpu-1t"), DEFAULTS)


def test_the_command_refuses_them_in_one_line_before_any_work(tmp_path, capsys):
    code = main(["run", *TWO, "--table", str(tmp_path), "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--table" in err[0] and not (tmp_path / "runs").exists()
