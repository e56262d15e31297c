"""``--resume`` in every command: an option that would change the run is refused in one line,
the same way, before any run folder is opened; the options a command allows pass the check."""
import argparse
import dataclasses

import pytest

from mobilenas.cli import build_parser, main
from pipeline.config import PipelineConfig

REFUSED = {  # command words -> a cheap option that would change the run
    ("train",): ["--epochs", "9"],
    ("search",): ["--trials", "3"],
    ("supernet", "train"): ["--epochs", "3"],
    ("netadapt",): ["--seed", "5"],
    ("run",): ["--seed", "5"],
    ("platforms", "compare"): ["--seed", "5"],
}
ALLOWED = {  # options a command takes with --resume (how to open a table, where Ray runs, --out, --json)
    ("run",): [["--rescale"], ["--force"], ["--out", "elsewhere"], ["--json"]],
    ("search",): [["--rescale"], ["--force"], ["--on-drift", "rescale"], ["--address", "auto"], ["--out", "elsewhere"]],
    ("supernet", "train"): [["--out", "elsewhere"]],
    ("platforms", "compare"): [["--out", "elsewhere"]],
    ("netadapt",): [["--rescale"], ["--force"], ["--json"]],
    ("train",): [["--json"]],
}


def _commands_with_resume(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    found = {words} if any("--resume" in a.option_strings for a in parser._actions) else set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _commands_with_resume(sub, (*words, name))
    return found


def test_every_command_with_resume_is_covered():
    assert _commands_with_resume(build_parser()) == set(REFUSED) == set(ALLOWED)


def _run(capsys, argv):
    code = main(argv)
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("command", sorted(REFUSED), ids=" ".join)
def test_an_option_given_with_resume_is_refused_before_the_folder_is_opened(tmp_path, capsys, command):
    option = REFUSED[command]
    code, err = _run(capsys, [*command, "--resume", str(tmp_path / "missing"), *option])
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"--resume continues the run with its recorded settings; drop {option[0]}" in err
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("command", [("train",), ("netadapt",)], ids=" ".join)
def test_a_spec_given_with_resume_is_refused_naming_spec(tmp_path, capsys, command):
    code, err = _run(capsys, [*command, "mobilenetv3-small", "--resume", str(tmp_path / "missing"), "--seed", "5"])
    assert code == 2 and "drop SPEC, --seed" in err


@pytest.mark.parametrize("command, option", [(c, o) for c, options in sorted(ALLOWED.items()) for o in options],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else " ".join(v))
def test_an_option_allowed_with_resume_reaches_the_folder(tmp_path, capsys, command, option):
    code, err = _run(capsys, [*command, "--resume", str(tmp_path / "missing"), *option])
    assert code == 2 and "drop" not in err and "missing" in err, err


def test_run_defaults_are_pipeline_config_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(PipelineConfig)}
    args = build_parser().parse_args(["run"])
    for name in ("budget", "strategy", "w", "seed", "workers", "threads", "target_width", "target_scale"):
        assert getattr(args, name) == defaults[name], name
    from mobilenas.cli_run import _space

    assert args.space is None and _space(args, "proxy") == defaults["space"]  # the space follows the evaluator
    assert _space(args, "supernet") == defaults["space"] + "-mbconv" and defaults["evaluator"] == "proxy"
    assert args.reward is None and defaults["reward"] == "mnasnet"  # hard with the supernet evaluator


TABLE_COMMANDS = [("run",), ("search",), ("netadapt",), ("latency", "predict"), ("latency", "validate"),
                  ("latency", "compare")]


@pytest.mark.parametrize("command", TABLE_COMMANDS, ids=" ".join)
def test_every_command_that_opens_a_table_takes_rescale_and_force_one_at_a_time(command):
    parser = build_parser()
    sub = parser
    for word in command:
        sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    flags = {s for a in sub._actions for s in a.option_strings}
    assert {"--rescale", "--force"} <= flags, command
    with pytest.raises(SystemExit):
        sub.parse_args(["--rescale", "--force"])  # mutually exclusive


@pytest.mark.parametrize("given, expected", [(None, "error"), ("rescale", "rescale"), ("force", "force")])
def test_a_resumed_search_keeps_its_drift_choice_unless_one_is_given(tmp_path, given, expected):
    from types import SimpleNamespace

    from nas.job import SearchJob
    from nas.search import SearchConfig

    said = []
    job = SearchJob(SearchConfig(target_ms=1.0), out=tmp_path, on_drift=given, say=said.append)
    job.folder = SimpleNamespace(manifest={"request": {"table": "t", "on_drift": "error", "table_trusted": False}})
    job._restore_request()
    assert (job.table, job.on_drift, job.table_trusted) == ("t", expected, False)
    assert bool(said) == (given is not None), said


@pytest.mark.parametrize("given, expected", [(None, "error"), ("rescale", "rescale")])
def test_a_resumed_netadapt_keeps_its_drift_choice_unless_one_is_given(given, expected):
    from mobilenas.cli_netadapt import resumed_setup
    from netadapt.job import JobSetup
    from netadapt.loop import NetAdaptConfig

    setup = JobSetup(NetAdaptConfig(target_ms=1.0), "spec", "name", "digits", 0, "table", "error", 1, None, None, 1)
    assert resumed_setup(setup, given).on_drift == expected
