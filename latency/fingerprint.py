"""Device fingerprints: what a latency table was measured on, and what differs now.

A lookup table is only valid for the hardware, runtime versions and measurer settings it was
measured with (MobileNetV3 section 4: latency is measured on the target device); using it
elsewhere must fail loudly (ARCHITECTURE.md). The CPU model *name* does not tell machines
apart (cloud hosts report one generic name for several CPU generations), so the fingerprint records the CPU's vendor, family, model number, stepping,
the ISA flags ONNX Runtime's kernels dispatch on, the cache sizes, the core count and the
ONNX Runtime build and providers. For a table measured on another device through a command
(:mod:`latency.command`), a user-given ``device_id`` names that device and replaces the
host's identity.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

# Fields that must match for a table to be usable; the rest are informational.
MATCHED_FIELDS = ("cpu_model", "cpu_vendor", "cpu_family", "cpu_model_id", "cpu_stepping", "cpu_flags", "cache_kib",
                  "cpu_count", "machine", "onnxruntime", "ort_build", "ort_providers", "torch")
# ISA extensions that change which kernels ONNX Runtime / MLAS dispatch to (x86 and Arm).
RELEVANT_FLAGS = frozenset({
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512vbmi", "avx_vnni", "avx_vnni_int8", "amx_tile", "amx_int8",
    "amx_bf16", "amx_fp16", "asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve", "sve2", "sme"})
_CPUINFO_KEYS = {  # fingerprint field -> /proc/cpuinfo keys (x86 first, then Arm)
    "cpu_vendor": ("vendor_id", "CPU implementer"),
    "cpu_family": ("cpu family", "CPU architecture"),
    "cpu_model_id": ("model", "CPU part"),
    "cpu_stepping": ("stepping", "CPU revision"),
}


def _cpuinfo_first_processor(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """``key -> value`` of the first processor block of /proc/cpuinfo (empty off Linux)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    info = _cpuinfo_first_processor()
    return info.get("model name") or platform.processor() or "unknown"


def cpu_identity(info: dict[str, str] | None = None) -> dict[str, object]:
    """Vendor, family, model number, stepping and relevant ISA flags (None where unknown)."""
    info = _cpuinfo_first_processor() if info is None else info
    identity: dict[str, object] = {field: next((info[k] for k in keys if k in info), None)
                                   for field, keys in _CPUINFO_KEYS.items()}
    flags = set((info.get("flags") or info.get("Features") or "").split())
    identity["cpu_flags"] = sorted(flags & RELEVANT_FLAGS)
    return identity


def cache_sizes_kib(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, int]:
    """Cache sizes of cpu0 in KiB by name (``l1d``, ``l1i``, ``l2``, ``l3``) from sysfs."""
    sizes: dict[str, int] = {}
    for index in sorted(root.glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip().lower()
            text = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        suffix = {"data": "d", "instruction": "i"}.get(kind, "")
        scale = {"K": 1, "M": 1024, "G": 1024 * 1024}.get(text[-1:], None)
        value = int(text[:-1]) * scale if scale else int(text) // 1024
        sizes[f"l{level}{suffix}"] = value
    return sizes


def ort_build() -> str:
    """ONNX Runtime's build description (git commit, build type), or its version string."""
    getter = getattr(ort, "get_build_info", None)
    return str(getter()) if getter is not None else str(ort.__version__)


def device_fingerprint(device_id: str | None = None) -> dict[str, object]:
    """The fingerprint of this machine and runtime (JSON-safe); ``device_id`` names the
    device a command measurer times on (recorded, and matched instead of the host's CPU)."""
    fingerprint: dict[str, object] = {
        "cpu_model": cpu_model(), **cpu_identity(), "cache_kib": cache_sizes_kib(),
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "system": platform.system(),
        "python": platform.python_version(), "onnxruntime": ort.__version__, "ort_build": ort_build(),
        "ort_providers": sorted(ort.get_available_providers()), "torch": torch.__version__, "numpy": np.__version__,
    }
    if device_id is not None:
        fingerprint["device_id"] = device_id
    return fingerprint


def matched_fields(recorded: dict[str, object]) -> tuple[str, ...]:
    """The fields that must match: the device id alone for a named device (its identity is
    not the host's), else :data:`MATCHED_FIELDS`."""
    return ("device_id",) if recorded.get("device_id") is not None else MATCHED_FIELDS


def fingerprint_differences(recorded: dict[str, object], current: dict[str, object],
                            recorded_settings: dict[str, object] | None = None,
                            current_settings: dict[str, object] | None = None) -> list[str]:
    """Human-readable differences in the matched fingerprint fields and in measurer settings.

    For a named device (``device_id`` recorded) the current id comes from the settings when
    given (resuming a build); prediction trusts the recorded id and the drift probe.
    """
    if recorded.get("device_id") is not None:
        current = {**current, "device_id": (current_settings or {}).get("device_id", recorded["device_id"])}
    diffs = [f"{name}: table {recorded.get(name)!r}, here {current.get(name)!r}"
             for name in matched_fields(recorded) if recorded.get(name) != current.get(name)]
    if recorded_settings is not None and current_settings is not None:
        for name in sorted(set(recorded_settings) | set(current_settings)):
            if recorded_settings.get(name) != current_settings.get(name):
                diffs.append(f"setting {name}: table {recorded_settings.get(name)!r}, "
                             f"here {current_settings.get(name)!r}")
    return diffs
