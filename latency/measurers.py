"""Latency measurers behind one protocol: ONNX Runtime CPU (the table source), torch eager CPU
(for comparison) and, in :mod:`latency.command`, an on-device command runner.

Every knob is an explicit field of a frozen settings dataclass and is recorded with the
results (ARCHITECTURE.md). Samples are per-inference times in milliseconds on the settings'
``clock``: ``thread``, the CPU time of the calling thread, for a runtime that computes in the
calling thread (ONNX Runtime and torch with one thread), else ``wall``. The thread clock leaves
out the moments the OS gave the core to another process, so other jobs on the machine move it
far less than the wall clock (figures in ``results/latency/README.md``). With several ORT
threads the calling thread's CPU time is only part of the process's, so ``thread`` is refused
there. ``auto`` (the default) chooses; tables recorded before the clock existed were timed on
the wall clock and keep it (:func:`latency.registry.measurer_from_recorded`).

Entry point for other packages: :func:`measure_model_ms`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Union, runtime_checkable

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from latency.allocator import pin_malloc_thresholds
from search_spaces.onnx_export import export_module_onnx
from storage.settings import check_settings, setting

ModelLike = Union[nn.Module, bytes, str, Path]
"""A torch module, ONNX bytes, or the path of an ONNX file."""

EXECUTION_MODES = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(settings: "OrtSettings") -> ort.SessionOptions:
    """ONNX Runtime session options carrying every knob of ``settings`` (quiet logging)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = EXECUTION_MODES[settings.execution_mode]
    options.graph_optimization_level = OPT_LEVELS[settings.graph_optimization_level]
    options.log_severity_level = 3
    return options


@runtime_checkable
class Measurer(Protocol):
    """Measures one model: ``measure(model, input_shape) -> samples in ms``."""

    name: str

    def settings_dict(self) -> dict[str, object]:
        """JSON-safe settings, recorded in table manifests and validation reports."""
        ...

    def measure(self, model: ModelLike, input_shape: tuple[int, ...]) -> np.ndarray:
        """Per-inference latencies in milliseconds (float64, all finite and > 0)."""
        ...


CLOCKS = ("auto", "thread", "wall")
CLOCK_FUNCTIONS = {"thread": time.thread_time_ns, "wall": time.perf_counter_ns}


def resolve_clock(owner: str, clock: str, threads: int) -> str:
    """``auto`` becomes ``thread`` for one computing thread, else ``wall``; ``thread`` with more
    threads is refused (the other threads' CPU time would be missed)."""
    if clock not in CLOCKS:
        raise ValueError(f"{owner}.clock = {clock!r} is not allowed; expected one of {CLOCKS}")
    if clock == "auto":
        return "thread" if threads == 1 else "wall"
    if clock == "thread" and threads != 1:
        raise ValueError(f"{owner}.clock = 'thread' times only the calling thread; with {threads} threads use 'wall'")
    return clock


def timed_runs(call: Callable[[], object], repeats: int, clock: str) -> np.ndarray:
    """``repeats`` timed calls of ``call`` on ``clock`` (:data:`CLOCK_FUNCTIONS`); samples in ms."""
    now = CLOCK_FUNCTIONS[clock]
    samples = np.empty(repeats)
    for i in range(repeats):
        start = now()
        call()
        samples[i] = now() - start
    return samples / 1e6


def full_input_shape(input_shape: tuple[int, ...], batch: int) -> tuple[int, ...]:
    """``(C, H, W)`` gets ``batch`` prepended; ``(N, C, H, W)`` must have ``N == batch``."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 3:
        return (batch, *shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape = {input_shape!r} is not allowed; expected (C, H, W) or (N, C, H, W), all > 0")
    if shape[0] != batch:
        raise ValueError(f"input_shape batch {shape[0]} differs from the measurer's batch = {batch}")
    return shape


def onnx_bytes_of(model: ModelLike, input_shape: tuple[int, ...]) -> bytes:
    """The ONNX bytes of ``model`` (exported at ``input_shape`` when it is a module)."""
    if isinstance(model, nn.Module):
        return export_module_onnx(model, input_shape)
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model file {str(path)!r} does not exist")
    return path.read_bytes()


@dataclass(frozen=True)
class OrtSettings:
    """ONNX Runtime CPU settings; 1 intra-op thread by default (2 threads were no faster and
    noisier on a 2-core x86 VM)."""

    intra_op_threads: int = setting(1, low=1)
    inter_op_threads: int = setting(1, low=1)
    execution_mode: str = "sequential"
    graph_optimization_level: str = "all"
    provider: str = "CPUExecutionProvider"
    batch: int = setting(1, low=1)
    warmup: int = setting(10, low=0)
    repeats: int = setting(50, low=1)
    clock: str = "auto"

    def __post_init__(self) -> None:
        check_settings(self, "ort.{name}")
        threads = self.intra_op_threads * (self.inter_op_threads if self.execution_mode == "parallel" else 1)
        object.__setattr__(self, "clock", resolve_clock("ort", self.clock, threads))
        if self.execution_mode not in EXECUTION_MODES:
            raise ValueError(f"ort.execution_mode = {self.execution_mode!r} is not allowed; expected one of {tuple(EXECUTION_MODES)}")
        if self.graph_optimization_level not in OPT_LEVELS:
            raise ValueError(f"ort.graph_optimization_level = {self.graph_optimization_level!r} is not allowed; "
                             f"expected one of {tuple(OPT_LEVELS)}")
        available = tuple(ort.get_available_providers())
        if self.provider not in available:
            raise ValueError(f"ort.provider = {self.provider!r} is not available; expected one of {available}")


class OrtRunner:
    """One ONNX Runtime session with a fixed random input, ready to time.

    Reusing a runner avoids creating a session (an export-sized cost, larger than a block's
    inference) again in every round when a model is measured in several interleaved rounds.
    """

    def __init__(self, onnx_bytes: bytes, input_shape: tuple[int, ...], settings: OrtSettings) -> None:
        self.session = ort.InferenceSession(onnx_bytes, session_options(settings), providers=[settings.provider])
        self.input_name = self.session.get_inputs()[0].name
        self.feed = {self.input_name: np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)}
        self.clock = settings.clock

    def run(self, repeats: int, warmup: int = 0) -> np.ndarray:
        """``warmup`` untimed runs, then ``repeats`` timed runs; samples in ms on the settings' clock."""
        run, feed = self.session.run, self.feed
        for _ in range(warmup):
            run(None, feed)
        return timed_runs(lambda: run(None, feed), repeats, self.clock)


class RunnerMeasurer:
    """A measurer that times through its ``runner`` (``warmup`` untimed runs, then ``repeats``
    timed ones) with settings of ``settings_class`` (its defaults when none are given),
    recorded with the runtime's ``versions()``."""

    name: str
    settings_class: type

    def __init__(self, settings: Any = None) -> None:
        self.settings = self.settings_class() if settings is None else settings

    def versions(self) -> dict[str, object]:
        return {}

    def settings_dict(self) -> dict[str, object]:
        return {"measurer": self.name, **self.versions(), **asdict(self.settings)}

    def runner(self, model: ModelLike, input_shape: tuple[int, ...]) -> Any:
        raise NotImplementedError

    def measure(self, model: ModelLike, input_shape: tuple[int, ...]) -> np.ndarray:
        return self.runner(model, input_shape).run(self.settings.repeats, self.settings.warmup)


class OrtMeasurer(RunnerMeasurer):
    """ONNX Runtime CPU measurer (the source of the lookup tables)."""

    name = "ort-cpu"
    settings_class = OrtSettings

    def versions(self) -> dict[str, object]:
        return {"onnxruntime": ort.__version__}

    def prepare_onnx(self, data: bytes, input_shape: tuple[int, ...]) -> bytes:
        """The model this measurer times for the float ONNX ``data`` (itself here; quantized
        in :class:`latency.quantized.OrtInt8Measurer`)."""
        return data

    def runner(self, model: ModelLike, input_shape: tuple[int, ...]) -> OrtRunner:
        shape = full_input_shape(input_shape, self.settings.batch)
        return OrtRunner(self.prepare_onnx(onnx_bytes_of(model, shape), shape), shape, self.settings)


@dataclass(frozen=True)
class TorchSettings:
    """torch eager CPU settings (a platform of its own: eager pays a per-operator cost ORT fuses away)."""

    threads: int = setting(1, low=1)
    batch: int = setting(1, low=1)
    warmup: int = setting(5, low=0)
    repeats: int = setting(30, low=1)
    clock: str = "auto"

    def __post_init__(self) -> None:
        check_settings(self, "torch.{name}")
        object.__setattr__(self, "clock", resolve_clock("torch", self.clock, self.threads))


class TorchMeasurer(RunnerMeasurer):
    """torch eager CPU measurer under ``torch.inference_mode`` with pinned threads."""

    name = "torch-cpu"
    settings_class = TorchSettings

    def versions(self) -> dict[str, object]:
        return {"torch": torch.__version__}

    def runner(self, model: ModelLike, input_shape: tuple[int, ...]) -> "TorchRunner":
        if not isinstance(model, nn.Module):
            raise ValueError(f"the {self.name} measurer needs a torch module, got {type(model).__name__}")
        return TorchRunner(model, full_input_shape(input_shape, self.settings.batch), self.settings.threads,
                           self.settings.clock)


class TorchRunner:
    """A torch module with a fixed random input, timed under ``torch.inference_mode`` with
    ``threads`` intra-op threads (restored after each call)."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], threads: int, clock: str = "wall") -> None:
        pin_malloc_thresholds()  # a fresh process times large activations like a warm one
        self.model, self.threads, self.clock = model.eval(), threads, clock
        self.x = torch.from_numpy(np.random.default_rng(0).standard_normal(input_shape).astype(np.float32))

    def run(self, repeats: int, warmup: int = 0) -> np.ndarray:
        """``warmup`` untimed runs, then ``repeats`` timed runs; samples in ms on the runner's clock."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                for _ in range(warmup):
                    self.model(self.x)
                return self.timed(repeats)
        finally:
            torch.set_num_threads(previous)

    def timed(self, repeats: int) -> np.ndarray:
        """``repeats`` timed runs in ms on the runner's clock (threads and inference mode already set)."""
        return timed_runs(lambda: self.model(self.x), repeats, self.clock)


def measure_model_ms(model: ModelLike, input_shape: tuple[int, ...], settings: OrtSettings | None = None) -> np.ndarray:
    """ONNX Runtime CPU latency samples (ms) of a whole model: a torch module (exported with
    the legacy exporter at ``input_shape``), ONNX bytes or an ONNX file path.

    ``input_shape`` is ``(C, H, W)`` or ``(N, C, H, W)`` with ``N == settings.batch``.
    Summarise with ``np.median``; the settings are ``OrtMeasurer(settings).settings_dict()``.
    """
    return OrtMeasurer(settings).measure(model, input_shape)
