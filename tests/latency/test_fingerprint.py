"""Hardware identity: CPU family/model/stepping, ISA flags, caches, ORT build; device ids."""
from __future__ import annotations

import json

import pytest

from tests.latency.fakes import other_cpu_family

from latency.build import BuildConfig, TableBuilder
from latency.command import CommandMeasurer, CommandSettings
from latency.fingerprint import (MATCHED_FIELDS, cache_sizes_kib, cpu_identity, device_fingerprint,
                                 fingerprint_differences)
from latency.keys import space_keys
from latency.table import MANIFEST_FILE, TableMismatchError, load_table
from latency.validation import sample_specs
from search_spaces.mnasnet_space import MnasNetSpace

XEON = {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "207", "stepping": "2",
        "model name": "Intel(R) Xeon(R) Processor", "flags": "fpu sse4_2 avx avx2 avx512f avx512_vnni amx_tile hypervisor"}


def test_cpu_identity_reads_family_model_stepping_and_relevant_flags():
    identity = cpu_identity(XEON)
    assert (identity["cpu_vendor"], identity["cpu_family"], identity["cpu_model_id"], identity["cpu_stepping"]) == (
        "GenuineIntel", "6", "207", "2")
    assert identity["cpu_flags"] == ["amx_tile", "avx", "avx2", "avx512_vnni", "avx512f", "sse4_2"]


def test_arm_cpuinfo_keys_are_understood():
    arm = {"CPU implementer": "0x41", "CPU architecture": "8", "CPU part": "0xd0c", "CPU revision": "1",
           "Features": "fp asimd asimddp i8mm crc32"}
    identity = cpu_identity(arm)
    assert identity["cpu_model_id"] == "0xd0c" and identity["cpu_flags"] == ["asimd", "asimddp", "i8mm"]


def test_cache_sizes_are_read_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                                 (3, "Unified", "32M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(f"{level}\n")
        (folder / "type").write_text(f"{kind}\n")
        (folder / "size").write_text(f"{size}\n")
    assert cache_sizes_kib(tmp_path) == {"l1d": 48, "l1i": 32, "l2": 2048, "l3": 32768}


def test_fingerprint_records_every_matched_field():
    fingerprint = device_fingerprint()
    assert set(MATCHED_FIELDS) <= set(fingerprint)
    assert "CPUExecutionProvider" in fingerprint["ort_providers"] and fingerprint["cpu_count"] >= 1


@pytest.mark.parametrize("field, value", [("cpu_model_id", "143"), ("cpu_stepping", "9"), ("cpu_flags", ["avx2"]),
                                          ("cache_kib", {"l2": 2048}), ("ort_build", "other build")])
def test_same_model_name_but_other_identity_is_a_difference(field, value):
    here = device_fingerprint()
    diffs = fingerprint_differences({**here, field: value}, here)
    assert len(diffs) == 1 and diffs[0].startswith(f"{field}: table {value!r}")


def test_table_with_edited_family_is_refused_naming_the_field(tmp_path, fake_measurer):
    reference = sample_specs(MnasNetSpace(resolution=32), 1, seed=99)[0]
    TableBuilder(tmp_path, fake_measurer, reference, space="mnasnet",
                 config=BuildConfig(batch_keys=4)).measure_keys(space_keys(MnasNetSpace(resolution=32))[:2])
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    other = other_cpu_family()
    manifest["fingerprint"]["cpu_family"] = other
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(TableMismatchError, match=f"cpu_family: table '{other}'"):
        load_table(tmp_path)


def test_command_device_id_is_recorded_and_replaces_the_host_identity(tmp_path, fake_device):
    settings = CommandSettings(template=fake_device, pattern=r"inference (?P<value>\d+) (?P<unit>us)", device_id="pixel7-sn123")
    reference = sample_specs(MnasNetSpace(resolution=32), 1, seed=99)[0]
    TableBuilder(tmp_path, CommandMeasurer(settings), reference, space="mnasnet")
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert manifest["fingerprint"]["device_id"] == "pixel7-sn123" and manifest["measurer"]["device_id"] == "pixel7-sn123"
    manifest["fingerprint"]["cpu_family"] = "other host"
    assert fingerprint_differences(manifest["fingerprint"], device_fingerprint()) == []
    other = CommandSettings(template=fake_device, pattern=settings.pattern, device_id="pixel8-sn9")
    with pytest.raises(TableMismatchError, match="device_id: table 'pixel7-sn123', here 'pixel8-sn9'"):
        TableBuilder(tmp_path, CommandMeasurer(other), reference, space="mnasnet")


def test_empty_device_id_is_rejected(fake_device):
    with pytest.raises(ValueError, match="device_id = ''"):
        CommandSettings(template=fake_device, device_id="")
