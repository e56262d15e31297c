"""The MnasNet decisions on MobileNetV3-Small's stages: the stages and strides of the paper's
Table 2, depth 7 to 16 blocks around Small's 11, exact round trips, and fewer operators than
the MobileNetV2 skeleton's models."""
import numpy as np
import pytest

from search_spaces.mnasnet_space import DECISION_NAMES, DECISIONS_PER_STAGE, MOBILENETV3_SMALL_STAGES, StageChoice
from search_spaces.reference import mobilenetv3_small
from search_spaces.registry import make_space


@pytest.fixture(params=["mnasnet-v3small", "mnasnet-v3small-mbconv"])
def v3small(request):
    return make_space(request.param, resolution=32, num_classes=10, in_channels=1)


def test_stages_are_mobilenetv3_small_bottleneck_stages():
    small = mobilenetv3_small(resolution=224)
    outs, strides = [], []
    for block in small.blocks:
        if not outs or block.out_channels != outs[-1] or block.stride != 1:
            outs.append(block.out_channels)
            strides.append(block.stride)
    repeats = [sum(b.out_channels == out for b in small.blocks) for out in outs]
    assert MOBILENETV3_SMALL_STAGES == tuple(zip(outs, repeats, strides)) == (
        (16, 1, 2), (24, 2, 2), (40, 3, 2), (48, 2, 1), (96, 3, 2))


def test_round_trips_with_small_head_and_stem(v3small):
    assert len(v3small.cardinalities) == 5 * 7
    rng = np.random.default_rng(0)
    for _ in range(100):
        indices = v3small.sample_indices(rng)
        spec = v3small.decode(indices)
        assert v3small.encode(spec) == indices
        assert (spec.head.feature_channels, spec.head.hidden_channels) == (576, 1024)
        assert spec.stem == mobilenetv3_small(resolution=32).stem


def test_depth_spans_seven_to_sixteen_blocks_and_downsamples_32x(v3small):
    shallow = [StageChoice("mbconv3", 3, False, "residual", 1.0, -1, "relu")] * 5
    deep = [StageChoice("mbconv6", 5, True, "residual", 1.25, 1, "hswish")] * 5
    for choices, depth in ((shallow, 7), (deep, 16)):
        blocks, in_channels = [], v3small.stem.out_channels
        for stage, choice in enumerate(choices):
            stage_blocks = v3small.stage_blocks(stage, choice, in_channels)
            blocks += stage_blocks
            in_channels = stage_blocks[-1].out_channels
        assert len(blocks) == depth
        stride = v3small.stem.stride
        for block in blocks:
            stride *= block.stride
        assert stride == 32


def test_its_models_are_shallower_than_the_mobilenetv2_skeletons():
    v2 = make_space("mnasnet-small", resolution=32, num_classes=10, in_channels=1)
    v3 = make_space("mnasnet-v3small", resolution=32, num_classes=10, in_channels=1)
    rng = np.random.default_rng(1)
    depth_v2 = [len(v2.sample(rng).blocks) for _ in range(200)]
    depth_v3 = [len(v3.sample(rng).blocks) for _ in range(200)]
    assert max(depth_v3) <= 16 <= min(depth_v2) + 4 and np.median(depth_v3) < np.median(depth_v2)


@pytest.mark.parametrize("name", ["mnasnet-v3small", "mnasnet-v3small-mbconv", "mnasnet-small"])
def test_deepened_adds_a_block_per_stage_where_its_layers_choice_allows_and_keeps_the_rest(name):
    space = make_space(name, resolution=32, num_classes=10, in_channels=1)
    rng = np.random.default_rng(7)
    layers = DECISION_NAMES.index("layers")
    for _ in range(8):
        indices = space.sample_indices(rng)
        spec = space.decode(indices)
        deeper = space.deepened(spec, 1)
        new = space.encode(deeper)
        assert space.deepened(spec, 0) == spec
        for stage, (_, repeats, _) in enumerate(space.stages):
            at = stage * DECISIONS_PER_STAGE
            depth = lambda idx: max(1, repeats + space.choices[layers][idx[at + layers]])  # noqa: E731
            assert depth(new) == min(depth(indices) + 1, repeats + max(space.choices[layers]))
            same = [i for i in range(DECISIONS_PER_STAGE) if i != layers]
            assert [new[at + i] for i in same] == [indices[at + i] for i in same] or depth(indices) == 1
        assert len(space.deepened(spec, 2).blocks) >= len(deeper.blocks) >= len(spec.blocks)


def test_deepening_one_stage_adds_a_block_there_only(v3small):
    spec = v3small.decode(tuple(0 for _ in v3small.cardinalities))
    layers = DECISION_NAMES.index("layers")
    for stage in range(len(v3small.stages)):
        deeper = v3small.deepened(spec, 1, stages=(stage,))
        old, new = v3small.encode(spec), v3small.encode(deeper)
        changed = [i // DECISIONS_PER_STAGE for i, (a, b) in enumerate(zip(old, new)) if a != b]
        assert len(deeper.blocks) == len(spec.blocks) + 1 and set(changed) == {stage}
        assert new[stage * DECISIONS_PER_STAGE + layers] > old[stage * DECISIONS_PER_STAGE + layers]
