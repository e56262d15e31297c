"""Layer keys: walking a spec covers stem, blocks and head; the space enumerates every key."""
from __future__ import annotations

import numpy as np
import torch

from latency.keys import key_cost, key_from_row, key_module, space_keys, spec_keys
from search_spaces.counting import spec_cost
from search_spaces.mnasnet_space import MnasNetSpace
from search_spaces.reference import reference_spec


def test_spec_keys_cover_stem_every_block_and_head_with_their_input_sides():
    spec = reference_spec("mobilenetv3-small", resolution=224)
    keys = spec_keys(spec)
    assert [k.kind for k in keys] == ["stem"] + ["block"] * len(spec.blocks) + ["head"]
    assert keys[0].input_side == 224 and keys[1].input_side == 112
    assert [k.input_side for k in keys[1:-1]] == list(spec.input_resolutions())
    assert keys[-1].input_side == spec.final_resolution and keys[-1].in_channels == spec.blocks[-1].out_channels
    assert keys[-1].num_classes == 1000 and keys[-1].hidden_channels == 1024


def test_keys_are_hashable_and_distinguish_context():
    spec = reference_spec("mobilenetv3-large", resolution=224)
    keys = spec_keys(spec)
    assert len({k: 1 for k in keys}) == len(set(keys))
    smaller = spec_keys(spec.replace(resolution=192))
    assert keys[1] != smaller[1]  # same block, other input side


def test_key_costs_sum_to_the_spec_cost():
    spec = reference_spec("mobilenetv3-small", resolution=224)
    params, madds = zip(*(key_cost(k) for k in spec_keys(spec)))
    cost = spec_cost(spec)
    assert (sum(params), sum(madds)) == (cost.params, cost.madds)


def test_key_module_maps_its_input_shape_like_the_model():
    spec = reference_spec("mobilenetv3-small", resolution=32)
    for key in spec_keys(spec):
        out = key_module(key).eval()(torch.zeros(1, *key.input_shape()))
        assert out.shape[0] == 1


def test_key_rows_round_trip():
    for key in spec_keys(reference_spec("mnasnet-a1", resolution=64)):
        row = {k: str(v) for k, v in key.as_row().items()}
        assert key_from_row(row) == key


def test_space_keys_contain_every_key_of_sampled_specs():
    space = MnasNetSpace(resolution=32)
    keys = set(space_keys(space))
    rng = np.random.default_rng(0)
    for _ in range(100):
        assert set(spec_keys(space.sample(rng))) <= keys


def test_activation_elements_of_a_bottleneck_count_every_map():
    from latency.keys import LayerKey, key_activations

    key = LayerKey("block", "bneck", 8, 16, 64, 24, 3, 2, False, "relu", False)
    # input 16x8x8, expanded 64x8x8, depthwise 64x4x4, output 24x4x4
    assert key_activations(key) == 16 * 64 + 64 * 64 + 64 * 16 + 24 * 16
    residual = LayerKey("block", "conv", 4, 8, 0, 8, 3, 1, False, "relu", True)
    assert key_activations(residual) == 3 * 8 * 16
