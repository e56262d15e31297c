"""Device fingerprints: what a latency table was measured on, and what differs now.

A lookup table is only valid for the hardware, runtime versions and measurer settings it was
measured with (MobileNetV3 section 4: latency is measured on the target device); using it
elsewhere must fail loudly (STYLE.md section 4).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

# Fields that must match for a table to be usable; the rest are informational.
MATCHED_FIELDS = ("cpu_model", "cpu_count", "machine", "onnxruntime", "torch")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def device_fingerprint() -> dict[str, object]:
    """The fingerprint of this machine and runtime (JSON-safe)."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def fingerprint_differences(recorded: dict[str, object], current: dict[str, object],
                            recorded_settings: dict[str, object] | None = None,
                            current_settings: dict[str, object] | None = None) -> list[str]:
    """Human-readable differences in the matched fingerprint fields and in measurer settings."""
    diffs = [f"{name}: table {recorded.get(name)!r}, here {current.get(name)!r}"
             for name in MATCHED_FIELDS if recorded.get(name) != current.get(name)]
    if recorded_settings is not None and current_settings is not None:
        for name in sorted(set(recorded_settings) | set(current_settings)):
            if recorded_settings.get(name) != current_settings.get(name):
                diffs.append(f"setting {name}: table {recorded_settings.get(name)!r}, "
                             f"here {current_settings.get(name)!r}")
    return diffs
