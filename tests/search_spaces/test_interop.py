"""Paper table rendering and timm arch_def strings (PAPER.md golden rows and strings)."""
import numpy as np
import pytest

from search_spaces.paper_table import render_markdown
from search_spaces.reference import REFERENCE_SPECS, reference_spec
from search_spaces.timm_arch import blocks_from_arch_def, to_arch_def
from tests.helpers import sampled_specs

# MobileNetV3-Small, Table 2 of the paper (final version), as PAPER.md gives it; the SE mark
# on the last 1x1 conv is dropped, following torchvision and timm.
TABLE_2 = """\
| 224²x3 | conv2d 3x3 | - | 16 | - | HS | 2 |
| 112²x16 | bneck 3x3 | 16 | 16 | yes | RE | 2 |
| 56²x16 | bneck 3x3 | 72 | 24 | - | RE | 2 |
| 28²x24 | bneck 3x3 | 88 | 24 | - | RE | 1 |
| 28²x24 | bneck 5x5 | 96 | 40 | yes | HS | 2 |
| 14²x40 | bneck 5x5 | 240 | 40 | yes | HS | 1 |
| 14²x40 | bneck 5x5 | 240 | 40 | yes | HS | 1 |
| 14²x40 | bneck 5x5 | 120 | 48 | yes | HS | 1 |
| 14²x48 | bneck 5x5 | 144 | 48 | yes | HS | 1 |
| 14²x48 | bneck 5x5 | 288 | 96 | yes | HS | 2 |
| 7²x96 | bneck 5x5 | 576 | 96 | yes | HS | 1 |
| 7²x96 | bneck 5x5 | 576 | 96 | yes | HS | 1 |
| 7²x96 | conv2d 1x1 | - | 576 | - | HS | 1 |
| 7²x576 | pool 7x7 | - | - | - | - | 1 |
| 1²x576 | conv2d 1x1, NBN | - | 1024 | - | HS | 1 |
| 1²x1024 | conv2d 1x1, NBN | - | k | - | - | 1 |
"""

TIMM_LARGE = [["ds_r1_k3_s1_e1_c16_nre"], ["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
              ["ir_r3_k5_s2_e3_c40_se0.25_nre"], ["ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"],
              ["ir_r2_k3_s1_e6_c112_se0.25"], ["ir_r3_k5_s2_e6_c160_se0.25"]]
TIMM_SMALL = [["ds_r1_k3_s2_e1_c16_se0.25_nre"], ["ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"],
              ["ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"], ["ir_r2_k5_s1_e3_c48_se0.25"],
              ["ir_r3_k5_s2_e6_c96_se0.25"]]


def test_small_renders_as_paper_table_2():
    rows = render_markdown(reference_spec("mobilenetv3-small"), classes_label="k").splitlines()[2:]
    assert "\n".join(rows) + "\n" == TABLE_2


@pytest.mark.parametrize("name, arch_def", [("mobilenetv3-large", TIMM_LARGE), ("mobilenetv3-small", TIMM_SMALL)])
def test_timm_strings_from_paper_import_to_reference_blocks(name, arch_def):
    reference = reference_spec(name)
    assert blocks_from_arch_def(arch_def, reference) == reference


@pytest.mark.parametrize("name", sorted(REFERENCE_SPECS))
def test_timm_round_trip_reference(name):
    spec = reference_spec(name, width=0.75)
    assert blocks_from_arch_def(to_arch_def(spec), spec) == spec


def test_timm_round_trip_sampled_without_conv_se():
    checked = 0
    for spec in sampled_specs(200, seed=31):
        if any(b.op == "conv" and b.se for b in spec.blocks):
            with pytest.raises(ValueError, match="no timm arch_def form"):
                to_arch_def(spec)
            continue
        assert blocks_from_arch_def(to_arch_def(spec), spec) == spec
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("text, message", [
    ("er_r1_k3_s1_e4_c24", "block type 'er'"),
    ("ir_r1_k3_s1_e4_c24_nsw", "option 'nsw'"),
    ("ir_r1_s1_e4_c24", "malformed"),
    ("ir_r1_k3_s1_e4_c24_se0.5", "se0.25"),
])
def test_timm_import_rejects_unsupported(text, message):
    with pytest.raises(ValueError, match=message):
        blocks_from_arch_def([[text]], reference_spec("mobilenetv3-small"))
