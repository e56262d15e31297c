"""Validation rules of ArchSpec and friends, the width multiplier and make_divisible."""
import pytest

from search_spaces.reference import mobilenetv3_large, mobilenetv3_small
from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, make_divisible, scale_width


def block(**changes):
    fields = dict(op="bneck", kernel=3, stride=1, exp_channels=64, out_channels=16, se=False, act="relu", skip=False)
    return BlockSpec(**(fields | changes))


@pytest.mark.parametrize("changes, message", [
    ({"op": "pool"}, "block.op"),
    ({"kernel": 4}, "block.kernel"),
    ({"kernel": 9}, "block.kernel"),
    ({"stride": 3}, "block.stride"),
    ({"exp_channels": 0}, "block.exp_channels"),
    ({"exp_channels": None}, "block.exp_channels"),
    ({"exp_channels": 1.5}, "block.exp_channels"),
    ({"out_channels": -8}, "block.out_channels"),
    ({"out_channels": True}, "block.out_channels"),
    ({"se": 1}, "block.se"),
    ({"act": "swish"}, "block.act"),
    ({"skip": "yes"}, "block.skip"),
    ({"op": "conv"}, "block.exp_channels"),  # conv has no expansion width
])
def test_block_rejects_invalid_field(changes, message):
    with pytest.raises(ValueError, match=message):
        block(**changes)


def test_error_names_value_and_allowed_options():
    with pytest.raises(ValueError) as info:
        block(stride=3)
    assert "3" in str(info.value) and "(1, 2)" in str(info.value)


@pytest.mark.parametrize("changes, message", [
    ({"out_channels": 0}, "stem.out_channels"),
    ({"kernel": 2}, "stem.kernel"),
    ({"stride": 4}, "stem.stride"),
    ({"act": "gelu"}, "stem.act"),
])
def test_stem_rejects_invalid_field(changes, message):
    with pytest.raises(ValueError, match=message):
        StemSpec(**({"out_channels": 16} | changes))


@pytest.mark.parametrize("changes, message", [
    ({"feature_channels": 0}, "head.feature_channels"),
    ({"hidden_channels": 0}, "head.hidden_channels"),
    ({"act": "tanh"}, "head.act"),
    ({"dropout": 1.0}, "head.dropout"),
    ({"dropout": -0.1}, "head.dropout"),
    ({"dropout": "0.2"}, "head.dropout"),
])
def test_head_rejects_invalid_field(changes, message):
    with pytest.raises(ValueError, match=message):
        HeadSpec(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"blocks": ()}, "arch.blocks"),
    ({"blocks": ("x",)}, r"arch.blocks\[0\]"),
    ({"resolution": 0}, "arch.resolution"),
    ({"in_channels": 0}, "arch.in_channels"),
    ({"num_classes": 0}, "arch.num_classes"),
    ({"stem": "stem"}, "arch.stem"),
    ({"head": None}, "arch.head"),
])
def test_arch_rejects_invalid_field(changes, message):
    fields = dict(blocks=(block(),))
    with pytest.raises(ValueError, match=message):
        ArchSpec(**(fields | changes))


def test_skip_requires_stride_1_and_same_width():
    ArchSpec(blocks=(block(out_channels=16, skip=True),))  # stem 16 -> 16, stride 1: valid
    with pytest.raises(ValueError, match=r"blocks\[0\].skip"):
        ArchSpec(blocks=(block(out_channels=24, skip=True),))
    with pytest.raises(ValueError, match=r"blocks\[0\].skip"):
        ArchSpec(blocks=(block(out_channels=16, stride=2, skip=True),))


def test_specs_are_hashable_and_frozen():
    spec = mobilenetv3_small()
    assert {spec: 1}[mobilenetv3_small()] == 1
    with pytest.raises(AttributeError):
        spec.resolution = 32  # type: ignore[misc]


def test_list_blocks_are_stored_as_tuple():
    spec = ArchSpec(blocks=[block()])
    assert isinstance(spec.blocks, tuple)


@pytest.mark.parametrize("value, expected", [(12, 16), (16, 16), (18, 24), (20, 24), (30, 32), (4, 8), (72 * 0.75, 56)])
def test_make_divisible_matches_reference_rounding(value, expected):
    assert make_divisible(value) == expected


def test_width_multiplier_returns_new_scaled_spec():
    spec = mobilenetv3_large()
    small = scale_width(spec, 0.5)
    assert small is not spec and spec.blocks[1].exp_channels == 64
    assert small.blocks[1].exp_channels == 32 and small.blocks[1].out_channels == 16
    assert all(c % 8 == 0 for b in small.blocks for c in (b.exp_channels, b.out_channels))
    assert small.head.hidden_channels == 1280  # kept below 1.0, as TF's finegrain classification mode
    assert scale_width(spec, 1.25).head.hidden_channels == 1600


def test_width_multiplier_rejects_non_positive():
    with pytest.raises(ValueError, match="width multiplier"):
        scale_width(mobilenetv3_small(), 0)


def test_replace_block_revalidates():
    spec = mobilenetv3_small()
    with pytest.raises(ValueError, match="skip"):
        spec.replace_block(1, out_channels=32, skip=True)
