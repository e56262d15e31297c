"""In-context layer timing for ONNX Runtime: weights cold, activations warm, as inside a network.

Timed alone, a layer's weights stay in the L2 cache from one run to the next; inside a
network every other layer's weights pass through the cache in between, so the layer reloads
its weights (from L3) each inference. The naive sum of isolated medians therefore
underestimates whole models, most at small resolutions, where layers run on 2x2 and 1x1 maps
and are bound by weight loading (figures in ``results/latency/README.md``). Here a layer is loaded into ``copies``
sessions (separate weight copies whose total exceeds twice the L2 size, up to a cap) that
are run round-robin, so each run finds its weights evicted. The sessions share one input
and one output buffer (io_binding) and the environment's arena allocator, so activations and
scratch buffers stay warm, as the previous layer leaves them inside a network. Both the
warm (single session) and the cold round-robin medians are returned; the calibration decides
how much of each to use. Runs are timed on the settings' clock (the thread's CPU time for one
thread), the clock the table's reference model is timed on, so a layer's ratio to it compares
like with like.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort

from latency.measurers import CLOCK_FUNCTIONS, OrtSettings, session_options

log = logging.getLogger(__name__)
_ENV_ALLOCATOR = {"registered": False}
DEFAULT_L2_BYTES = 2 * 1024 * 1024
MAX_COPIES = 8


def l2_cache_bytes() -> int:
    """Per-core L2 size from sysfs (Linux), else 2 MiB."""
    path = Path("/sys/devices/system/cpu/cpu0/cache/index2/size")
    try:
        text = path.read_text().strip().upper()
        return int(text[:-1]) * (1024 if text.endswith("K") else 1024 * 1024) if text[-1] in "KM" else int(text)
    except (OSError, ValueError, IndexError):
        return DEFAULT_L2_BYTES


def copies_for(weight_bytes: int, l2_bytes: int, max_copies: int = MAX_COPIES) -> int:
    """Round-robin copies so that the other copies' weights exceed twice the L2 size."""
    return int(min(max_copies, max(2, 1 + math.ceil(2 * l2_bytes / max(weight_bytes, 1)))))


def _register_env_allocator() -> None:
    if not _ENV_ALLOCATOR["registered"]:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
        _ENV_ALLOCATOR["registered"] = True


def _session(onnx_bytes: bytes, settings: OrtSettings) -> ort.InferenceSession:
    options = session_options(settings)
    options.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(onnx_bytes, options, providers=[settings.provider])


class RoundRobinRunner:
    """``copies`` sessions of one layer sharing input/output buffers; see the module docstring."""

    def __init__(self, onnx_bytes: bytes, input_shape: tuple[int, ...], settings: OrtSettings, copies: int) -> None:
        _register_env_allocator()
        self.now = CLOCK_FUNCTIONS[settings.clock]  # the clock every other runner of these settings reads
        self.sessions = [_session(onnx_bytes, settings) for _ in range(copies)]
        first = self.sessions[0]
        data = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
        self.input = ort.OrtValue.ortvalue_from_numpy(data)
        out_shape = [int(d) for d in first.get_outputs()[0].shape]
        self.output = ort.OrtValue.ortvalue_from_numpy(np.zeros(out_shape, np.float32))
        self.bindings = []
        for session in self.sessions:
            binding = session.io_binding()
            binding.bind_ortvalue_input(session.get_inputs()[0].name, self.input)
            binding.bind_ortvalue_output(session.get_outputs()[0].name, self.output)
            self.bindings.append(binding)

    @property
    def copies(self) -> int:
        return len(self.sessions)

    def run_warm(self, repeats: int, warmup: int = 0) -> np.ndarray:
        """The first session alone: ``repeats`` samples in ms."""
        return self._time([0], repeats, warmup)

    def run_cold(self, rounds: int, warmup_rounds: int = 1) -> np.ndarray:
        """Every session in turn, ``rounds`` times: ``rounds * copies`` samples in ms."""
        return self._time(list(range(len(self.sessions))), rounds, warmup_rounds)

    def _time(self, order: list[int], rounds: int, warmup_rounds: int) -> np.ndarray:
        pairs = [(self.sessions[i].run_with_iobinding, self.bindings[i]) for i in order]
        for _ in range(warmup_rounds):
            for run, binding in pairs:
                run(binding)
        samples, now = np.empty(rounds * len(pairs)), self.now
        index = 0
        for _ in range(rounds):
            for run, binding in pairs:
                start = now()
                run(binding)
                samples[index] = now() - start
                index += 1
        return samples / 1e6
