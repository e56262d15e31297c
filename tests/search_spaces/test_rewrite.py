"""Width rewrites for NetAdapt: residual groups and multi-block width changes."""
import pytest

from search_spaces.builder import build_model
from search_spaces.reference import reference_spec
from search_spaces.rewrite import (STEM, expansion_convs, residual_groups, same_layout, se_squeeze_widths, widened,
                                   with_widths)
from search_spaces.spec import ArchSpec, BlockSpec, se_channels
from tests.helpers import sampled_specs

LARGE = reference_spec("mobilenetv3-large")
SMALL = reference_spec("mobilenetv3-small")


def test_residual_groups_of_mobilenetv3_large_by_hand():
    # Table 1: stem 16 -> b0 16 (residual); 24: b1 (s2), b2; 40: b3 (s2), b4, b5; 80: b6 (s2), b7-b9;
    # 112: b10 (80 -> 112, no residual), b11; 160: b12 (s2), b13, b14
    assert residual_groups(LARGE) == ((STEM, 0), (1, 2), (3, 4, 5), (6, 7, 8, 9), (10, 11), (12, 13, 14))


def test_residual_groups_of_mobilenetv3_small_by_hand():
    # Table 2: b0 is stride 2 (no residual, the stem stands alone); 24: b1, b2; 40: b3-b5; 48: b6, b7; 96: b8-b10
    assert residual_groups(SMALL) == ((0,), (1, 2), (3, 4, 5), (6, 7), (8, 9, 10))


def test_residual_groups_cover_every_block_once_and_only_skips_join():
    for spec in sampled_specs(30, seed=3):
        groups = residual_groups(spec)
        members = [i for g in groups for i in g if i != STEM]
        assert members == list(range(len(spec.blocks)))
        for group in groups:
            first = group[1] if group[0] == STEM else group[0]
            assert not spec.blocks[first].skip or group[0] == STEM
            assert all(spec.blocks[i].skip for i in group[1:])
            widths = {spec.blocks[i].out_channels if i != STEM else spec.stem.out_channels for i in group}
            assert len(widths) == 1


def test_group_shrink_keeps_residuals_and_dsconv_structure():
    new = with_widths(LARGE, {STEM: {"out_channels": 8}, 0: {"out_channels": 8}})
    assert new.stem.out_channels == 8 and new.blocks[0].out_channels == 8
    assert new.blocks[0].exp_channels == 8  # exp == in: the depthwise runs on the input, follows it
    assert new.blocks[1].exp_channels == 64  # a real expansion layer keeps its width
    assert expansion_convs(new) == expansion_convs(LARGE)
    assert build_model(new).blocks[0].conv_pw is None


def test_multi_block_rewrite_of_a_whole_group():
    new = with_widths(LARGE, {i: {"out_channels": 32} for i in (3, 4, 5)} | {4: {"out_channels": 32, "exp_channels": 96}})
    assert [b.out_channels for b in new.blocks[3:6]] == [32, 32, 32]
    assert [b.exp_channels for b in new.blocks[3:6]] == [72, 96, 120]
    assert all(b.skip for b in new.blocks[4:6])
    assert same_layout(LARGE, new) is None


def test_partial_group_shrink_breaks_a_residual_and_is_rejected():
    with pytest.raises(ValueError, match="skip"):
        with_widths(LARGE, {3: {"out_channels": 32}})


@pytest.mark.parametrize("changes, match", [
    ({15: {"out_channels": 8}}, "block index"),
    ({0: {"width": 8}}, "expected keys"),
    ({STEM: {"exp_channels": 8}}, "STEM"),
    ({1: {"out_channels": 0}}, "out_channels"),
])
def test_with_widths_rejects_bad_changes(changes, match):
    with pytest.raises(ValueError, match=match):
        with_widths(LARGE, changes)


def test_with_widths_rejects_exp_on_a_regular_conv():
    spec = ArchSpec(blocks=(BlockSpec("conv", 3, 1, None, 16),), resolution=32)
    with pytest.raises(ValueError, match="regular conv"):
        with_widths(spec, {0: {"exp_channels": 8}})


def test_head_feature_width_and_identity():
    assert with_widths(SMALL, {}) == SMALL
    assert with_widths(SMALL, {}, feature_channels=512).head.feature_channels == 512


def test_se_squeeze_widths_match_the_built_model_and_never_grow_when_exp_shrinks():
    new = with_widths(SMALL, {4: {"exp_channels": 120}, 6: {"exp_channels": 40}})
    model = build_model(new)
    for index, width in enumerate(se_squeeze_widths(new)):
        se = model.blocks[index].se
        assert (se is None and width is None) or se.conv_reduce.out_channels == width
    assert all(se_channels(c - 1) <= se_channels(c) for c in range(2, 4096))


def test_same_layout_names_the_first_structural_difference():
    assert same_layout(SMALL, SMALL.replace_block(3, kernel=3)).startswith("block 3")
    assert "block count" in same_layout(SMALL, SMALL.replace(blocks=SMALL.blocks[:-1]))
    assert "hidden" in same_layout(SMALL, SMALL.replace(head=SMALL.head.__class__(576, 512)))


def test_widening_mobilenetv3_small_by_a_third_by_hand():
    # outputs x4/3 rounded to 8 (24 -> 32, 40 -> 56 (53.3), 48 -> 64, 96 -> 128; b0 16 -> 24 (21.3));
    # an expansion keeps its ratio to the new input (b1: 72/16 x 24 = 108 -> 112); stem and head as they are
    wide = widened(SMALL, 4 / 3)
    assert [b.out_channels for b in wide.blocks] == [24, 32, 32, 56, 56, 56, 64, 64, 128, 128, 128]
    assert wide.blocks[1].exp_channels == 112
    assert (wide.stem, wide.head) == (SMALL.stem, SMALL.head)
    assert same_layout(SMALL, wide) is None
    build_model(wide)


@pytest.mark.parametrize("spec", [LARGE, SMALL, *sampled_specs(6, seed=11)], ids=lambda s: str(len(s.blocks)))
def test_widening_never_narrows_keeps_the_layout_and_stays_under_the_ceilings(spec):
    ceilings = [(b.out_channels + 8, (b.exp_channels or 0) + 16) for b in spec.blocks]
    for multiplier in (1.0, 1.2, 2.0):
        wide = widened(spec, multiplier, ceilings)
        assert same_layout(spec, wide) is None
        for old, new, (out, exp) in zip(spec.blocks, wide.blocks, ceilings):
            assert old.out_channels <= new.out_channels <= max(out, old.out_channels)
            assert (old.exp_channels or 0) <= (new.exp_channels or 0)
    assert widened(spec, 1.0) == spec


@pytest.mark.parametrize("multiplier", [0.9, 0, True, "2"])
def test_widening_by_less_than_one_is_refused(multiplier):
    with pytest.raises(ValueError, match="widening multiplier"):
        widened(SMALL, multiplier)
