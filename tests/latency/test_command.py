"""The on-device command measurer, driven by a local script playing the device."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from latency.command import CommandMeasurer, CommandSettings, parse_latencies_ms
from search_spaces.builder import build_block
from search_spaces.spec import BlockSpec

SHAPE = (1, 16, 8, 8)


def _module():
    return build_block(16, BlockSpec("bneck", 3, 1, 32, 16))


def test_fake_device_samples_are_read_in_ms(fake_device):
    measurer = CommandMeasurer(CommandSettings(template=fake_device, pattern=r"inference (\d+) us", unit="us", runs=2))
    samples = measurer.measure(_module(), SHAPE)
    assert samples.size == 6 and np.all((samples > 0.9) & (samples < 1.1))


def test_unit_group_overrides_the_configured_unit():
    assert parse_latencies_ms("a 2 ms b 500 us c 0.001 s", r"(?P<value>[\d.]+) (?P<unit>ms|us|s)\b") == [2.0, 0.5, 1.0]


def test_pattern_without_match_names_the_pattern(fake_device):
    measurer = CommandMeasurer(CommandSettings(template=fake_device, pattern=r"latency=(\d+)"))
    with pytest.raises(ValueError, match="latency="):
        measurer.measure(_module(), SHAPE)


def test_failing_command_reports_exit_code(tmp_path):
    template = f"{sys.executable} -c 'import sys; sys.exit(3)' {{model}}"
    with pytest.raises(RuntimeError, match="exited with 3"):
        CommandMeasurer(CommandSettings(template=template)).measure(_module(), SHAPE)


def test_template_needs_model_placeholder_and_pattern_a_group():
    with pytest.raises(ValueError, match="{model}"):
        CommandSettings(template="benchmark --graph=x.onnx")
    with pytest.raises(ValueError, match="no group"):
        CommandSettings(template="b {model}", pattern=r"\d+ ms")
    with pytest.raises(ValueError, match="unit"):
        CommandSettings(template="b {model}", unit="ns")
