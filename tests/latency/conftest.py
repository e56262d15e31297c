"""Shared fixtures for the latency tests: a deterministic fake measurer and a fake device."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.latency.fakes import FakeMeasurer


@pytest.fixture(scope="session")
def probed_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ONNX Runtime table whose baseline matches this machine now (fakes.make_probed_table);
    copy it (fakes.copy_table) before changing it."""
    from tests.latency.fakes import make_probed_table

    return make_probed_table(tmp_path_factory.mktemp("probed") / "table")


@pytest.fixture
def fake_measurer() -> FakeMeasurer:
    return FakeMeasurer()


@pytest.fixture
def fake_device(tmp_path: Path) -> str:
    """A command template running a script that plays a device: it checks the model file and
    prints three per-run latencies in microseconds, as a phone benchmark binary would."""
    script = tmp_path / "fake_device.py"
    script.write_text(textwrap.dedent("""
        import sys
        from pathlib import Path
        model = Path(sys.argv[1].split("=", 1)[1])
        data = model.read_bytes()
        assert data[:2], "empty model"
        for run in range(3):
            print(f"run {run}: inference {1000 + 10 * run + len(data) % 7} us")
    """))
    return f"{sys.executable} {script} --graph={{model}}"
