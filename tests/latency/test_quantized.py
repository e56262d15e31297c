"""Int8 measurer (quantize_static, QDQ/QOperator) and float-vs-int8 comparison of tables."""
from __future__ import annotations

import collections
import dataclasses

import numpy as np
import onnx
import pytest

from latency.build import BuildConfig, measure_key
from latency.compare import compare, ratio_summary
from latency.keys import spec_keys, key_module
from latency.lazy import LazyPredictor
from latency.quantized import OrtInt8Measurer, OrtInt8Settings, inline_initializer_identities, quantize_onnx
from latency.registry import measurer_from_recorded
from search_spaces.onnx_export import export_module_onnx
from tests.latency.fakes import copy_table, probed_specs

FAST = dict(warmup=1, repeats=3)


def _block_onnx():
    key = next(k for k in spec_keys(probed_specs()[0]) if k.kind == "block" and k.exp_channels)
    shape = (1, *key.input_shape())
    return key, export_module_onnx(key_module(key).eval(), shape), shape


def _ops(data: bytes) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load_from_string(data).graph.node)


@pytest.mark.parametrize("fmt, expected", [("qdq", "DequantizeLinear"), ("qoperator", "QLinearConv")])
def test_quantize_static_produces_the_recorded_format(fmt, expected):
    _, data, shape = _block_onnx()
    ops = _ops(quantize_onnx(data, shape, OrtInt8Settings(quant_format=fmt, **FAST)))
    assert ops[expected] > 0
    if fmt == "qoperator":
        assert ops["Conv"] == 0  # every conv quantized, none left in float


def test_identity_biases_are_inlined_so_every_conv_can_be_quantized():
    model = onnx.load_from_string(_block_onnx()[1])
    inlined = inline_initializer_identities(model)
    initializers = {init.name for init in inlined.graph.initializer}
    assert not [n for n in inlined.graph.node if n.op_type == "Identity" and n.input[0] in initializers]


def test_int8_measurer_times_the_quantized_model_and_caches_it():
    _, data, shape = _block_onnx()
    measurer = OrtInt8Measurer(OrtInt8Settings(**FAST))
    samples = measurer.measure(data, shape[1:])
    assert samples.shape == (3,) and np.all(samples > 0)
    assert measurer.prepare_onnx(data, shape) is measurer.prepare_onnx(data, shape)
    recorded = measurer.settings_dict()
    assert recorded["measurer"] == "ort-cpu-int8" and recorded["quant_format"] == "qdq"
    assert measurer_from_recorded(recorded).settings == measurer.settings


def test_int8_layer_is_timed_in_context():
    key, _, _ = _block_onnx()
    row = measure_key(OrtInt8Measurer(OrtInt8Settings(**FAST)), key, BuildConfig(max_passes=1))
    assert row["median_ms"] > 0 and row["cold_median_ms"] > 0 and row["copies"] >= 2


@pytest.mark.parametrize("field, value", [("quant_format", "qint4"), ("activation_type", "int4"),
                                          ("calibration_batches", 0)])
def test_bad_int8_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=f"int8.{field} = "):
        OrtInt8Settings(**{field: value})


def test_compare_lists_both_predictions_and_their_ratio(probed_table, tmp_path):
    a = LazyPredictor(copy_table(probed_table, tmp_path / "a"), tolerance=5)
    b = LazyPredictor(copy_table(probed_table, tmp_path / "b"), tolerance=5)
    spec = probed_specs()[0]
    other = dataclasses.replace(spec, num_classes=10)
    rows = compare(a, b, {"known": spec, "other": other})
    assert rows[0].a_ms == rows[0].b_ms and rows[0].ratio == pytest.approx(1.0)
    assert rows[1].a_ms is None and rows[1].ratio is None  # head for 10 classes not measured
    assert ratio_summary(rows) == {"n": 1, "median": 1.0, "min": 1.0, "max": 1.0}


def test_compare_cli_prints_reference_models_and_samples(probed_table, tmp_path, capsys):
    from mobilenas.cli import main

    a, b = copy_table(probed_table, tmp_path / "a"), copy_table(probed_table, tmp_path / "b")
    assert main(["latency", "compare", str(a), str(b), "--specs", "2", "--drift-tolerance", "5"]) == 0
    out = capsys.readouterr().out
    assert "mobilenetv3-large" in out and "sample-1" in out and "--measure-missing" in out
    assert main(["latency", "compare", str(a), str(b), "--specs", "1", "--json", "--drift-tolerance", "5"]) == 0
    assert '"a_measurer": "ort-cpu"' in capsys.readouterr().out
