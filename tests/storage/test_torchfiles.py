"""Tensors through storage: atomic writes, and one guarded read whose errors are one line."""
import errno
import os
from fractions import Fraction

import pytest
import torch

from storage.statefiles import write_bytes_atomic
from storage.torchfiles import load_torch, save_torch


def test_round_trip_and_type_check(tmp_path):
    state = {"w": torch.arange(4.0), "step": 3}
    save_torch(tmp_path / "s.pt", state)
    loaded = load_torch(tmp_path / "s.pt")
    assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 3
    save_torch(tmp_path / "t.pt", torch.zeros(2))
    with pytest.raises(ValueError, match="holds Tensor; expected dict"):
        load_torch(tmp_path / "t.pt", what="weights file")
    assert load_torch(tmp_path / "t.pt", expect=None).shape == (2,)


@pytest.mark.parametrize("content, message", [
    (b"", "empty or truncated"), (b"not a torch file at all", "truncated, corrupt or not a torch weights file"),
])
def test_unreadable_files_are_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_torch(path, what="weights file")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="weights file .*missing.pt' does not exist"):
        load_torch(tmp_path / "missing.pt", what="weights file")


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Fraction(1, 3)}, path)
    with pytest.raises(ValueError, match="never run pickled code"):
        load_torch(path)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "s.pt"
    save_torch(path, {"v": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="previous contents are unchanged"):
        save_torch(path, {"v": 2})
    with pytest.raises(OSError):
        write_bytes_atomic(path, b"x")
    monkeypatch.undo()
    assert load_torch(path) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["s.pt"]
