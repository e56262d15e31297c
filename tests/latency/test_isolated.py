"""Whole models measured in a fresh child process (latency.isolated)."""
from __future__ import annotations

import math
import os

import pytest
import torch

import latency.isolated as isolated
from latency.endtoend import cached_model, measure_specs, spec_input_shape
from latency.isolated import CHILD, IN_PROCESS_ENV, ChildMeasurementError, can_isolate, measure_in_child
from latency.measurers import OrtMeasurer, OrtSettings, TorchMeasurer
from search_spaces.reference import reference_spec
from tests.latency.fakes import FakeMeasurer

FAST = OrtSettings(warmup=1, repeats=3)


def _small(resolution: int = 32):
    return reference_spec("mobilenetv3-small", resolution=resolution, num_classes=10, in_channels=1, width=0.5)


def _in_child(spec, model=None):
    shape = spec_input_shape(spec)
    onnx = cached_model(OrtMeasurer(FAST), spec)
    return measure_in_child(OrtMeasurer(FAST), [model or onnx], [shape], onnx, shape, pairs=2, block=1)


def test_an_ort_measurement_runs_in_the_child_not_here(monkeypatch):
    def here(*args, **kwargs):
        raise AssertionError("measured in the calling process")

    monkeypatch.setattr(isolated, "measure_paired", here)
    spec = _small()
    results = measure_specs(OrtMeasurer(FAST), [spec, spec], spec, pairs=4, block=2)
    assert len(results) == 2 and all(math.isfinite(r.ratio) and r.pairs >= 4 for r in results)
    assert CHILD.process is not None and CHILD.process.poll() is None  # the child stays for the next call


def test_the_switch_keeps_measurements_in_this_process(monkeypatch):
    calls = []
    monkeypatch.setenv(IN_PROCESS_ENV, "1")
    real = isolated.measure_paired
    monkeypatch.setattr(isolated, "measure_paired", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec = _small()
    measure_specs(OrtMeasurer(FAST), [spec], spec, pairs=2, block=1)
    assert calls == [1]


def test_only_onnx_runtime_measurers_with_onnx_models_move():
    assert can_isolate(OrtMeasurer(FAST), None) and can_isolate(OrtMeasurer(FAST), [b"onnx", "model.onnx"])
    assert not can_isolate(OrtMeasurer(FAST), [torch.nn.Identity()])  # a module in memory stays here
    assert not can_isolate(TorchMeasurer(), None)
    assert not can_isolate(FakeMeasurer(), None)


def test_a_failed_job_names_the_problem_and_the_child_serves_the_next():
    spec = _small()
    with pytest.raises(ChildMeasurementError, match="no usable pair|ONNX|Invalid|INVALID"):
        _in_child(spec, model=b"not an onnx model")
    assert len(_in_child(spec)) == 1


def test_a_child_that_died_is_started_again():
    spec = _small()
    _in_child(spec)
    CHILD.process.kill()
    CHILD.process.wait()
    assert len(_in_child(spec)) == 1


def test_a_forked_process_starts_its_own_child():
    spec = _small()
    _in_child(spec)
    parents_child = CHILD.process.pid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked copy measures through a child of its own, not through its parent's pipes
        try:
            _in_child(spec)
            os.write(write, str(CHILD.process.pid).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    forked_child = int(os.read(read, 64) or b"0")
    assert forked_child not in (0, parents_child)
    assert len(_in_child(spec)) == 1  # ours still answers


def test_a_child_that_cannot_start_says_why(monkeypatch, tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no onnxruntime here' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setattr(isolated.sys, "executable", str(broken))
    CHILD.close()
    with pytest.raises(ChildMeasurementError, match="no onnxruntime here"):
        _in_child(_small())
    monkeypatch.undo()
    assert len(_in_child(_small())) == 1


def test_an_answer_left_by_an_interrupted_caller_is_not_taken_for_the_next_job(tmp_path):
    spec = _small()
    _in_child(spec)
    stale = tmp_path / "interrupted"
    stale.mkdir()
    CHILD.process.stdin.write(f"{stale}\n")  # a job whose caller stopped waiting: its answer comes first
    CHILD.process.stdin.flush()
    assert len(_in_child(spec)) == 1


def test_a_ctrl_c_at_the_terminal_does_not_reach_the_child():
    """Ctrl-C signals the terminal's process group; a job stops at its next safe point and the
    measurement it waits for must finish, so the child has a session of its own."""
    _in_child(_small())
    assert os.getpgid(CHILD.process.pid) != os.getpgid(0)
