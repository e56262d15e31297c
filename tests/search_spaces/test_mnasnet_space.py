"""The MnasNet x MobileNetV3 space: decisions, canonical encodings, sampling, mutation, size."""
import numpy as np
import pytest

from search_spaces.mnasnet_space import DECISION_NAMES, MnasNetSpace, StageChoice
from search_spaces.reference import reference_spec
from search_spaces.spec import make_divisible


def test_decisions_are_seven_per_stage_in_fixed_order(space):
    assert len(space.decisions) == 49
    assert [d.name for d in space.decisions[:7]] == list(DECISION_NAMES)
    assert space.cardinalities[:7] == (4, 2, 2, 2, 3, 3, 2)


def test_encode_decode_round_trip_and_canonical(space):
    rng = np.random.default_rng(0)
    for _ in range(300):
        raw = tuple(int(rng.integers(n)) for n in space.cardinalities)
        spec = space.decode(raw)
        canonical = space.encode(spec)
        assert space.decode(canonical) == spec
        assert space.encode(space.decode(canonical)) == canonical
        assert space.canonicalize(raw) == canonical


def test_one_architecture_has_one_encoding(space):
    rng = np.random.default_rng(1)
    by_spec: dict = {}
    for _ in range(2000):
        raw = tuple(int(rng.integers(n)) for n in space.cardinalities)
        by_spec.setdefault(space.decode(raw), set()).add(space.canonicalize(raw))
    assert all(len(codes) == 1 for codes in by_spec.values())


def test_inactive_skip_is_canonicalized_to_none(space):
    # Stage 1 (24 filters, stride 2) with layers -1 has a single stride-2 layer: skip is inactive.
    idx = list(space.canonicalize([0] * 49))
    base = 7  # stage 1 starts at decision 7
    idx[base + 5] = 0  # layers -1 -> 1 layer
    idx[base + 3] = 1  # skip = residual, but no layer can take it
    assert space.canonicalize(idx)[base + 3] == 0


def test_redundant_filter_choice_maps_to_smallest_index(space):
    # 0.75 and 1.0 of MobileNetV2's 16 filters both round to 16.
    assert make_divisible(16 * 0.75) == make_divisible(16 * 1.0) == 16
    idx = list(space.canonicalize([0] * 49))
    idx[4] = 1
    assert space.canonicalize(idx)[4] == 0


def test_stage_layers_filters_and_expansion(space):
    choice = StageChoice("mbconv6", 5, True, "residual", 1.25, 1, "hswish")
    blocks = space.stage_blocks(3, choice, in_channels=40)
    assert len(blocks) == 5 and blocks[0].stride == 2 and all(b.stride == 1 for b in blocks[1:])
    assert blocks[0].exp_channels == 240 and blocks[1].exp_channels == 480
    assert {b.out_channels for b in blocks} == {80}
    assert not blocks[0].skip and all(b.skip for b in blocks[1:])
    conv = space.stage_blocks(0, StageChoice("conv", 3, False, "none", 1.0, 0, "relu"), 16)
    assert conv[0].op == "conv" and conv[0].exp_channels is None
    ds = space.stage_blocks(0, StageChoice("dsconv", 3, False, "none", 1.0, 0, "relu"), 16)
    assert ds[0].exp_channels == 16


def test_sampling_is_seeded_and_stays_in_space(space):
    a = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(6)
    for _ in range(50):
        spec = space.sample(rng)
        assert (spec.resolution, spec.num_classes, spec.in_channels) == (32, 10, 1)
        space.encode(spec)


def test_mutation_changes_architecture_and_stays_in_space(space):
    rng = np.random.default_rng(7)
    spec = space.sample(rng)
    for _ in range(100):
        child = space.mutate(spec, rng)
        assert child != spec
        assert space.decode(space.encode(child)) == child
        spec = child


def test_decode_rejects_bad_indices(space):
    with pytest.raises(ValueError, match="expected 49"):
        space.decode([0] * 48)
    with pytest.raises(ValueError, match=r"stage 0 op"):
        space.decode([4] + [0] * 48)
    with pytest.raises(ValueError, match="expected an index"):
        space.decode([-1] + [0] * 48)


def test_encode_rejects_specs_outside_space(space):
    with pytest.raises(ValueError, match="not in this space"):
        space.encode(reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1))
    inside = space.sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="not in this space"):
        space.encode(inside.replace_block(0, kernel=7))
    with pytest.raises(ValueError, match="not in this space"):
        space.encode(inside.replace(resolution=64))


def test_size_is_exact_on_a_small_space():
    # Two stages, enumerated exhaustively: the DP count equals the number of distinct specs.
    tiny = MnasNetSpace(resolution=16, num_classes=3, in_channels=1, stages=((16, 1, 1), (24, 1, 2)))
    distinct = {tiny.decode(idx) for idx in np.ndindex(*tiny.cardinalities)}
    assert tiny.size() == len(distinct)
    assert tiny.size() < int(np.prod(tiny.cardinalities))


def test_full_space_size_is_reported(space):
    assert 1e18 < space.size() < (4 * 2 * 2 * 2 * 3 * 3 * 2) ** 7


def test_block_contexts_cover_sampled_specs(space):
    contexts = set(space.block_contexts())
    rng = np.random.default_rng(8)
    for _ in range(30):
        spec = space.sample(rng)
        sides = spec.input_resolutions()
        for i, block in enumerate(spec.blocks):
            assert (block, spec.in_channels_of(i), sides[i]) in contexts
