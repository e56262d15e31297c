"""On-device measurer: hand an exported ONNX file to a user-given command and read the latency
from its output (e.g. ``adb push {model} /data/local/tmp && adb shell benchmark --graph=...``).

MobileNetV3 and MnasNet measure on a phone's big core; this measurer lets a table be built
for any device reachable by a shell command. Placeholders in the template: ``{model}`` (the
ONNX file path, shell-quoted), ``{input_shape}`` (e.g. ``1,3,224,224``), ``{batch}``.
The pattern is a regular expression whose group ``value`` (or first group) is the latency;
an optional group ``unit`` (``us``, ``ms``, ``s``) overrides the configured unit. Every match
in the output is one sample; a minus sign right before the number counts (``-0.4 ms`` is
negative, not 0.4), and a sample that is not a positive finite time is refused naming its line.
A failing command (a device that disconnected) and unusable output are both a
:class:`MeasureCommandError`: one line at the command line, exit code 2.
"""
from __future__ import annotations

import logging
import math
import re
import shlex
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from latency.measurers import ModelLike, full_input_shape, onnx_bytes_of
from storage.settings import check_settings, setting

log = logging.getLogger(__name__)
UNITS_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
DEFAULT_PATTERN = r"(?P<value>[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?|nan|inf))\s*ms"
"""A number (sign, ``nan`` and ``inf`` included, so that they are refused rather than misread)
followed by ``ms``."""


@dataclass(frozen=True)
class CommandSettings:
    """The command template, the pattern reading its output and how often to run it;
    ``device_id`` (e.g. the phone's serial and SoC) is recorded and names the device in the
    table's fingerprint instead of the host's CPU (:mod:`latency.fingerprint`)."""

    template: str
    pattern: str = DEFAULT_PATTERN
    unit: str = "ms"
    batch: int = setting(1, low=1)
    runs: int = setting(1, low=1)
    timeout_s: float = 600.0
    device_id: str | None = None

    def __post_init__(self) -> None:
        if "{model}" not in self.template:
            raise ValueError(f"command template {self.template!r} has no {{model}} placeholder")
        try:
            self.template.format(model="m.onnx", batch=1, input_shape="1,3,8,8")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"command template {self.template!r} has an unknown placeholder or a stray brace ({exc}); "
                             "allowed: {model}, {batch}, {input_shape} (write {{ and }} for literal braces)") from None
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"command pattern {self.pattern!r} is not a valid regular expression: {exc}") from exc
        if compiled.groups < 1:
            raise ValueError(f"command pattern {self.pattern!r} has no group; put the latency number in (?P<value>...)")
        if self.unit not in UNITS_MS:
            raise ValueError(f"command unit = {self.unit!r} is not allowed; expected one of {tuple(UNITS_MS)}")
        if self.device_id is not None and not str(self.device_id).strip():
            raise ValueError(f"command device_id = {self.device_id!r} is not allowed; expected a non-empty name or None")
        check_settings(self, "command.{name}")


class MeasureCommandError(RuntimeError, ValueError):
    """The measure command failed, timed out or printed no usable latency: a problem with the
    user's command or device (a ``ValueError`` to the command line: one line, exit code 2)."""


def _line_of(output: str, position: int) -> str:
    """The output line holding ``position``, stripped."""
    return output[output.rfind("\n", 0, position) + 1:].split("\n", 1)[0].strip()


def parse_latencies_ms(output: str, pattern: str, unit: str = "ms") -> list[float]:
    """Every latency the pattern finds in ``output``, in milliseconds; a match that is not a
    positive finite time raises :class:`MeasureCommandError` naming its line."""
    samples = []
    for match in re.finditer(pattern, output):
        groups = match.groupdict()
        group = "value" if groups.get("value") is not None else 1
        text, begin = match.group(group), match.start(group)
        match_unit = groups.get("unit") or unit
        if match_unit not in UNITS_MS:
            raise MeasureCommandError(f"unit {match_unit!r} in the command output line {_line_of(output, begin)!r} is not "
                                      f"known; expected one of {tuple(UNITS_MS)}")
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if begin > 0 and output[begin - 1] == "-" and not text.startswith(("-", "+")):
            value = -value
        if not math.isfinite(value) or value <= 0:
            raise MeasureCommandError(f"the command output line {_line_of(output, begin)!r} holds {text!r}, not a positive "
                                      f"finite time (read with pattern {pattern!r})")
        samples.append(value * UNITS_MS[match_unit])
    return samples


class CommandMeasurer:
    """Runs ``settings.template`` on an exported ONNX file and parses the latency samples."""

    name = "command"

    def __init__(self, settings: CommandSettings) -> None:
        self.settings = settings

    def settings_dict(self) -> dict[str, object]:
        return {"measurer": self.name, **asdict(self.settings)}

    def measure(self, model: ModelLike, input_shape: tuple[int, ...]) -> np.ndarray:
        shape = full_input_shape(input_shape, self.settings.batch)
        data = onnx_bytes_of(model, shape)
        samples: list[float] = []
        with tempfile.TemporaryDirectory(prefix="mobilenas-cmd-") as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(data)
            command = self.settings.template.format(model=shlex.quote(str(path)), batch=shape[0],
                                                    input_shape=",".join(str(v) for v in shape))
            for _ in range(self.settings.runs):
                samples += self._run_once(command)
        return np.asarray(samples, dtype=float)

    def _run_once(self, command: str) -> list[float]:
        """One call: its samples, or a one-line :class:`MeasureCommandError` naming the command."""
        log.debug("running %s", command)
        try:
            done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=self.settings.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise MeasureCommandError(f"measure command timed out after {self.settings.timeout_s} s "
                                      f"(device hung or disconnected?): {command}") from exc
        if done.returncode != 0:
            tail = " | ".join((done.stderr or done.stdout).strip()[-300:].splitlines()) or "no output"
            raise MeasureCommandError(f"measure command exited with {done.returncode} (device disconnected or command "
                                      f"failed): {tail}; command: {command}")
        try:
            samples = parse_latencies_ms(done.stdout, self.settings.pattern, self.settings.unit)
        except MeasureCommandError as exc:
            raise MeasureCommandError(f"measure command printed garbage: {exc}; command: {command}") from None
        if not samples:
            tail = " | ".join(done.stdout.strip()[-300:].splitlines()) or "no output"
            raise MeasureCommandError(f"measure command printed no latency that pattern {self.settings.pattern!r} "
                                      f"reads: {tail!r}; command: {command}")
        return samples
