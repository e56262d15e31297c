"""torch eager on a CUDA GPU: the ``torch-cuda`` measurer.

A kernel launch returns before the GPU has finished, so every timed run is bracketed by
``torch.cuda.synchronize()``: the sample is the wall time from an idle GPU to the output being
ready, what an application waiting for the result sees. The module and its input are copied to
the GPU once per runner (the caller's module stays where it is), and :meth:`TorchCudaMeasurer.runner`
lets paired timing (:mod:`latency.paired`) alternate model and reference run by run.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from latency.measurers import ModelLike, TorchMeasurer, TorchRunner, TorchSettings, full_input_shape


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU here."""
    return bool(torch.cuda.is_available())


class TorchCudaMeasurer(TorchMeasurer):
    """torch eager on ``cuda:0`` under ``torch.inference_mode`` (settings: :class:`TorchSettings`;
    ``threads`` pins the host threads that launch the kernels)."""

    name = "torch-cuda"

    def __init__(self, settings: TorchSettings | None = None) -> None:
        super().__init__(replace(settings or TorchSettings(), clock="wall"))  # the GPU's time is not the thread's

    def settings_dict(self) -> dict[str, object]:
        gpu = torch.cuda.get_device_name(0) if cuda_available() else None
        return {**super().settings_dict(), "cuda": torch.version.cuda, "gpu": gpu}

    def runner(self, model: ModelLike, input_shape: tuple[int, ...]) -> "TorchCudaRunner":
        if not isinstance(model, nn.Module):
            raise ValueError(f"the {self.name} measurer needs a torch module, got {type(model).__name__}")
        if not cuda_available():
            raise ValueError(f"the {self.name} measurer needs a CUDA GPU; torch.cuda.is_available() is False here "
                             "(expected a CUDA build of torch and a visible GPU)")
        return TorchCudaRunner(model, full_input_shape(input_shape, self.settings.batch), self.settings.threads)


class TorchCudaRunner(TorchRunner):
    """A copy of the module on the GPU with a fixed random input there, timed run by run with a
    synchronisation before and after each run."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], threads: int) -> None:
        self.device = torch.device("cuda", 0)
        super().__init__(copy.deepcopy(model).to(self.device), input_shape, threads, "wall")
        self.x = self.x.to(self.device)

    def timed(self, repeats: int) -> np.ndarray:
        """``repeats`` timed runs in ms, each from an idle GPU to its output being ready."""
        samples = np.empty(repeats)
        for i in range(repeats):
            torch.cuda.synchronize(self.device)
            start = time.perf_counter_ns()
            self.model(self.x)
            torch.cuda.synchronize(self.device)
            samples[i] = time.perf_counter_ns() - start
        return samples / 1e6
