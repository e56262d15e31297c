"""Int8 latency: ONNX Runtime CPU timing of statically quantized models.

MobileNetV3 (section 6.1) reports latency of float and quantized models; a table for the
deployed model must time what is deployed. :class:`OrtInt8Measurer` quantizes every float
ONNX model it is handed with ``onnxruntime.quantization.quantize_static`` (MinMax
calibration on ``calibration_batches`` seeded random batches; QDQ or QOperator format,
activation and weight types, per-channel: all recorded in the settings) and times the
result exactly as :class:`latency.measurers.OrtMeasurer` times float models. Latency does
not depend on the calibration values, only on the graph ORT builds from the quantized model,
so random batches serve. Quantized models are cached in memory by the float model's digest:
a table build and a validation time the same model many times.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from latency.measurers import OrtMeasurer, OrtSettings

log = logging.getLogger(__name__)
QUANT_FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
QUANT_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
CACHE_ENTRIES = 160


@dataclass(frozen=True)
class OrtInt8Settings(OrtSettings):
    """ONNX Runtime CPU settings plus how models are quantized (defaults: QDQ, uint8
    activations and int8 weights, per-tensor, the x86 combination ORT documents first)."""

    quant_format: str = "qdq"
    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = False
    calibration_batches: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.quant_format not in QUANT_FORMATS:
            raise ValueError(f"int8.quant_format = {self.quant_format!r} is not allowed; expected one of {tuple(QUANT_FORMATS)}")
        for name in ("activation_type", "weight_type"):
            if getattr(self, name) not in QUANT_TYPES:
                raise ValueError(f"int8.{name} = {getattr(self, name)!r} is not allowed; expected one of {tuple(QUANT_TYPES)}")
        if isinstance(self.calibration_batches, bool) or not isinstance(self.calibration_batches, int) \
                or self.calibration_batches < 1:
            raise ValueError(f"int8.calibration_batches = {self.calibration_batches!r} is not allowed; expected an integer >= 1")


class _RandomBatches(CalibrationDataReader):
    """``count`` seeded standard-normal batches for the model's single input."""

    def __init__(self, name: str, shape: tuple[int, ...], count: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self._batches = iter([{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(count)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)


def inline_initializer_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop ``Identity`` nodes whose input is an initializer (the legacy exporter emits them
    for shared bias tensors); the quantizer needs biases as initializers to fuse a Conv into
    ``QLinearConv``, else the Conv stays float between Dequantize/Quantize nodes."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    outputs = {out.name for out in graph.output}
    alias = {node.output[0]: node.input[0] for node in graph.node
             if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs}
    keep = [node for node in graph.node if not (node.op_type == "Identity" and node.output[0] in alias)]
    for node in keep:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(keep)
    return model


def quantize_onnx(data: bytes, input_shape: tuple[int, ...], settings: OrtInt8Settings) -> bytes:
    """The statically quantized version of the float ONNX model ``data``."""
    model = inline_initializer_identities(onnx.load_from_string(data))
    name = model.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="mobilenas-int8-") as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        onnx.save(model, source)
        quiet = logging.getLogger()  # the quantizer warns through the root logger
        level = quiet.level
        quiet.setLevel(max(level, logging.ERROR))
        try:
            _quantize(source, target, name, input_shape, settings)
        finally:
            quiet.setLevel(level)
        return target.read_bytes()


def _quantize(source: Path, target: Path, name: str, input_shape: tuple[int, ...], settings: OrtInt8Settings) -> None:
    quantize_static(source, target, _RandomBatches(name, input_shape, settings.calibration_batches),
                    quant_format=QUANT_FORMATS[settings.quant_format], activation_type=QUANT_TYPES[settings.activation_type],
                    weight_type=QUANT_TYPES[settings.weight_type], per_channel=settings.per_channel,
                    calibrate_method=CalibrationMethod.MinMax)


class OrtInt8Measurer(OrtMeasurer):
    """ONNX Runtime CPU measurer of statically quantized (int8) models."""

    name = "ort-cpu-int8"

    def __init__(self, settings: OrtInt8Settings | None = None) -> None:
        super().__init__(OrtInt8Settings() if settings is None else settings)
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    def prepare_onnx(self, data: bytes, input_shape: tuple[int, ...]) -> bytes:
        """``data`` quantized (cached by digest and input shape)."""
        key = hashlib.sha1(data).hexdigest() + repr(tuple(input_shape))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        quantized = quantize_onnx(data, tuple(input_shape), self.settings)
        self._cache[key] = quantized
        if len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return quantized
