"""The torch eager runner fixes glibc's heap thresholds before it times anything
(latency.allocator): without them a fresh process times large activations slower than a warm
one, and the drift signature read a table's own machine as other hardware."""
from __future__ import annotations

import ctypes.util
import sys

import pytest
import torch
from torch import nn

import latency.allocator as allocator
from latency.measurers import TorchRunner


def test_the_torch_runner_pins_the_thresholds_before_timing(monkeypatch):
    calls = []
    monkeypatch.setattr("latency.measurers.pin_malloc_thresholds", lambda: calls.append("pinned") or True)
    runner = TorchRunner(nn.Conv2d(1, 2, 3), (1, 1, 8, 8), threads=1)
    assert calls == ["pinned"]
    assert runner.run(2).shape == (2,)


@pytest.mark.skipif(not sys.platform.startswith("linux") or "libc.so" not in str(ctypes.util.find_library("c")),
                    reason="glibc only")
def test_pinning_succeeds_on_glibc_and_is_done_once(monkeypatch):
    monkeypatch.setattr(allocator, "_pinned", None)
    seen = []
    real = allocator._mallopt
    monkeypatch.setattr(allocator, "_mallopt", lambda parameter, value: seen.append(parameter) or real(parameter, value))
    assert allocator.pin_malloc_thresholds() is True
    assert allocator.pin_malloc_thresholds() is True
    assert seen == [allocator.M_MMAP_THRESHOLD, allocator.M_TRIM_THRESHOLD]


def test_without_mallopt_nothing_is_pinned(monkeypatch):
    monkeypatch.setattr(allocator, "_pinned", None)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert allocator.pin_malloc_thresholds() is False
    torch.zeros(1)  # the process goes on as before


def test_a_c_library_that_refuses_the_large_threshold_gets_the_most_it_takes(monkeypatch):
    monkeypatch.setattr(allocator, "_pinned", None)
    calls = []

    def mallopt(parameter, value):
        calls.append((parameter, value))
        return value <= allocator.MMAP_THRESHOLD_FALLBACK_BYTES or parameter == allocator.M_TRIM_THRESHOLD

    monkeypatch.setattr(allocator, "_mallopt", mallopt)
    assert allocator.pin_malloc_thresholds() is True
    assert calls == [(allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD_BYTES),
                     (allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD_FALLBACK_BYTES),
                     (allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD_BYTES)]
