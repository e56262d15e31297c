"""NetAdapt weight transfer: the shrunk model computes what the old one computes once the
dropped channels are zeroed (MobileNetV3 4.2; NetAdapt 3.2, largest-L2-norm filters)."""
import pytest
import torch

from netadapt.proposals import ProposalConfig, propose_reductions
from netadapt.transfer import ChannelSelection, select_channels, shrink_state_dict
from search_spaces.builder import build_model
from search_spaces.counting import count_madds
from search_spaces.reference import reference_spec
from search_spaces.rewrite import STEM, residual_groups, with_widths
from tests.helpers import sampled_specs

SMALL = reference_spec("mobilenetv3-small", resolution=32, in_channels=1, num_classes=10)
LARGE = reference_spec("mobilenetv3-large", resolution=32, in_channels=1, num_classes=10)


def _randomized_model(spec, seed=0, dtype=torch.float32):
    """A model with realistic BN statistics (one training-mode batch) and random BN affines
    and SE biases, so a dropped channel's BN bias would leak into the next layer unless
    zeroed, and head linears large enough for the output to depend on the input."""
    torch.manual_seed(seed)
    model = build_model(spec).to(dtype)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.randn(4, spec.in_channels, spec.resolution, spec.resolution, dtype=dtype))
        for name, tensor in model.state_dict().items():
            if name.endswith("bn.weight"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith(("bn.bias", "se.conv_reduce.bias", "se.conv_expand.bias")):
                tensor.normal_(0, 0.2)
            elif name.startswith(("head.hidden.weight", "head.classifier.weight")):
                tensor.normal_(0, 0.1)
    return model.eval()


def _randomized_state(spec, seed=0):
    return {k: v.clone() for k, v in _randomized_model(spec, seed).state_dict().items()}


def _complement(kept, width):
    mask = torch.ones(width, dtype=torch.bool)
    mask[kept] = False
    return mask


def _zero(state, prefix, dropped, bn=True):
    state[f"{prefix}.weight" if not bn else f"{prefix}.conv.weight"][dropped] = 0
    if bn:
        state[f"{prefix}.bn.weight"][dropped] = 0
        state[f"{prefix}.bn.bias"][dropped] = 0


def _zero_dropped(spec, state, sel: ChannelSelection):
    """Zero, in the old model, the producing filters and batch norms of every dropped channel."""
    state = {k: v.clone() for k, v in state.items()}
    groups = list(residual_groups(spec))
    if groups[0][0] != STEM:
        groups.insert(0, (STEM,))
    for group in groups:
        width = spec.stem.out_channels if group[-1] == STEM else spec.blocks[group[-1]].out_channels
        kept = sel.stem if group[-1] == STEM else sel.outputs[group[-1]]
        for i in group:
            producer = "stem" if i == STEM else (f"blocks.{i}.conv" if spec.blocks[i].op == "conv" else f"blocks.{i}.conv_pwl")
            _zero(state, producer, _complement(kept, width))
    for i, block in enumerate(spec.blocks):
        if block.op == "bneck":
            dropped = _complement(sel.expansions[i], block.exp_channels)
            if f"blocks.{i}.conv_pw.conv.weight" in state:
                _zero(state, f"blocks.{i}.conv_pw", dropped)
            _zero(state, f"blocks.{i}.conv_dw", dropped)
        if block.se:
            squeeze = state[f"blocks.{i}.se.conv_reduce.weight"].shape[0]
            dropped = _complement(sel.se_hidden[i], squeeze)
            state[f"blocks.{i}.se.conv_reduce.weight"][dropped] = 0
            state[f"blocks.{i}.se.conv_reduce.bias"][dropped] = 0
    _zero(state, "head.conv_features", _complement(sel.features, spec.head.feature_channels))
    return state


def _outputs(model, state, x):
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval()(x)


def assert_transfer_exact(old_spec, new_spec, seed=0, dtype=torch.float32):
    """Equal outputs, measured against the output scale (deep sampled specs with random BN
    affines reach logits in the millions): up to float32 rounding (1e-3 of the scale, seen up
    to 1.1e-4; a wrongly sliced tensor is off by O(1)), or 1e-9 in float64."""
    model = _randomized_model(old_spec, seed, dtype)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    new_state = shrink_state_dict(old_spec, state, new_spec)
    reference = _zero_dropped(old_spec, state, select_channels(old_spec, state, new_spec))
    x = torch.randn(2, old_spec.in_channels, old_spec.resolution, old_spec.resolution, dtype=dtype)
    expected = _outputs(model, reference, x)
    scale = expected.abs().max().item()
    error = (_outputs(build_model(new_spec).to(dtype), new_state, x) - expected).abs().max().item()
    tolerance = 1e-3 if dtype == torch.float32 else 1e-9
    assert error <= tolerance * (scale + 1e-3), f"max error {error} at output scale {scale}"
    # the zeroing mattered: the unmodified old model computes something else
    assert (_outputs(model, state, x) - expected).abs().max().item() > 1e-2 * scale


@pytest.mark.parametrize("changes, feature", [
    ({4: {"exp_channels": 200}}, None),  # expansion; SE squeeze 64 -> 56 hidden units
    ({3: {"exp_channels": 64}, 1: {"exp_channels": 24}}, None),  # two expansions at once
    ({i: {"out_channels": 32} for i in (3, 4, 5)}, None),  # bottleneck group with residuals
    ({i: {"out_channels": 16} for i in (8, 9, 10)}, None),  # last group, feeds the head
    ({STEM: {"out_channels": 8}}, None),  # stem: block 0's depthwise (exp == in) follows
    ({}, 512),  # head feature conv
])
def test_mobilenetv3_small_shrinks_are_exact(changes, feature):
    assert_transfer_exact(SMALL, with_widths(SMALL, changes, feature_channels=feature))


def test_head_without_hidden_conv_slices_the_classifier_inputs():
    spec = reference_spec("mobilenetv2", resolution=32, in_channels=1, num_classes=10)
    new = with_widths(spec, {16: {"out_channels": 256}}, feature_channels=1024)
    assert new.head.hidden_channels is None
    assert_transfer_exact(spec, new)


def test_mobilenetv3_large_group_tied_to_the_stem_is_exact():
    new = with_widths(LARGE, {STEM: {"out_channels": 8}, 0: {"out_channels": 8}, 6: {"exp_channels": 200}})
    assert_transfer_exact(LARGE, new)


def _check_sampled_proposals(specs, per_spec, dtype):
    config = ProposalConfig(include_stem=True, include_head=True, granularity=8)
    kinds = set()
    for seed, spec in enumerate(specs):
        proposals = propose_reductions(spec, lambda s: count_madds(s) / 1e6, 0.02 * count_madds(spec) / 1e6, config)
        rng = torch.Generator().manual_seed(seed)
        for index in torch.randperm(len(proposals), generator=rng)[:per_spec].tolist():
            kinds.add(proposals[index].kind)
            assert_transfer_exact(spec, proposals[index].spec, seed, dtype)
    return kinds


def test_proposals_on_a_sampled_mnasnet_spec_are_exact():
    candidates = [s for s in sampled_specs(20, seed=7) if any(b.op == "conv" for b in s.blocks)
                  and any(b.skip for b in s.blocks) and any(b.se for b in s.blocks)]
    spec = min(candidates, key=count_madds)  # the cheapest, to keep the default suite fast
    config = ProposalConfig(include_stem=True, include_head=True)
    proposals = propose_reductions(spec, lambda s: count_madds(s) / 1e6, 0.02 * count_madds(spec) / 1e6, config)
    for kind in ("expansion", "bottleneck"):
        # the largest group (most residuals) and the first expansion
        pick = max((p for p in proposals if p.kind == kind), key=lambda p: len(p.blocks))
        assert_transfer_exact(spec, pick.spec)


@pytest.mark.slow
def test_random_proposals_on_sampled_mnasnet_specs_are_exact():
    kinds = _check_sampled_proposals(sampled_specs(4, seed=11), per_spec=4, dtype=torch.float64)
    assert {"bottleneck", "expansion"} <= kinds


def test_all_widths_shrunk_at_once_on_a_sampled_spec_is_exact():
    spec = next(s for s in sampled_specs(20, seed=5) if any(b.skip for b in s.blocks) and any(b.se for b in s.blocks))
    config = ProposalConfig(include_stem=True, include_head=True)
    proposals = propose_reductions(spec, lambda s: count_madds(s) / 1e6, 0.0, config)
    changes, feature = {}, None
    for p in proposals:  # one step each: compose them into one multi-block rewrite
        if p.kind == "expansion":
            changes.setdefault(p.blocks[0], {})["exp_channels"] = p.channels_after
        elif p.kind in ("bottleneck", "stem"):
            for i in p.blocks or (STEM,):
                changes.setdefault(i, {})["out_channels"] = p.channels_after
        else:
            feature = p.channels_after
    # float64: this deep sampled spec with random BN affines is ill-conditioned enough that float32
    # rounding alone reached 2.4e-3 of the output scale with eps 1e-3 (exact to 1e-9 in float64)
    assert_transfer_exact(spec, with_widths(spec, changes, feature_channels=feature), dtype=torch.float64)


def test_keeps_the_largest_norm_filters_summed_over_a_residual_group():
    state = _randomized_state(SMALL)
    state["blocks.4.conv_pw.conv.weight"][[5, 200]] *= 100  # expansion: norm of the producing filter
    state["blocks.5.conv_pwl.conv.weight"][[1, 39]] *= 100  # only one member of group (3, 4, 5)
    state["blocks.4.conv_pwl.conv.weight"][[1, 39]] *= 0.01
    new = with_widths(SMALL, {4: {"exp_channels": 8}} | {i: {"out_channels": 8} for i in (3, 4, 5)})
    sel = select_channels(SMALL, state, new)
    assert {5, 200} <= set(sel.expansions[4].tolist())
    assert {1, 39} <= set(sel.outputs[3].tolist())
    assert all(torch.equal(sel.outputs[i], sel.outputs[3]) for i in (4, 5))
    assert torch.equal(sel.expansions[5], sel.expansions[5].sort().values)


def test_added_expansion_conv_is_a_channel_selection_that_loads():
    new = with_widths(SMALL, {STEM: {"out_channels": 8}, 0: {"exp_channels": 16}})
    state = _randomized_state(SMALL)
    out = shrink_state_dict(SMALL, state, new)
    build_model(new).load_state_dict(out)
    weight = out["blocks.0.conv_pw.conv.weight"].flatten(1)
    assert weight.shape == (16, 8) and set(weight.unique().tolist()) <= {0.0, 1.0}
    assert weight.sum() == 8  # each kept stem channel feeds the depthwise channel it fed before
    sel = select_channels(SMALL, state, new)
    for j, channel in enumerate(sel.expansions[0].tolist()):
        if channel in sel.stem.tolist():
            assert weight[j, sel.stem.tolist().index(channel)] == 1


@pytest.mark.parametrize("new, match", [
    (SMALL.replace_block(3, kernel=3), "block 3"),
    (with_widths(SMALL, {4: {"exp_channels": 256}}), "block 4: exp_channels 240 -> 256 grows"),
    (with_widths(LARGE, {1: {"exp_channels": 16}}), "block 1: exp 16 == in 16 removes"),
    (SMALL.replace(num_classes=5), "num_classes"),
])
def test_rejects_specs_that_are_not_a_width_shrink(new, match):
    old = LARGE if new.blocks[0].exp_channels == 16 and len(new.blocks) == 15 else SMALL
    with pytest.raises(ValueError, match=match):
        shrink_state_dict(old, build_model(old).state_dict(), new)


def test_rejects_a_state_dict_of_another_spec():
    with pytest.raises(ValueError, match="state dict lacks 'blocks.0.se.conv_reduce.weight'"):
        shrink_state_dict(SMALL, build_model(LARGE).state_dict(), SMALL)
    state = build_model(SMALL).state_dict()
    state["blocks.4.conv_pw.conv.weight"] = state["blocks.4.conv_pw.conv.weight"][:8]
    with pytest.raises(ValueError, match="'blocks.4.conv_pw.conv.weight' has shape"):
        shrink_state_dict(SMALL, state, SMALL)


def test_transfer_is_deterministic_and_leaves_the_global_rng_alone():
    state = build_model(SMALL).state_dict()
    new = with_widths(SMALL, {4: {"exp_channels": 200}})
    before = torch.random.get_rng_state()
    first = shrink_state_dict(SMALL, state, new)
    assert torch.equal(before, torch.random.get_rng_state())  # callers' seeded fine-tuning is unaffected
    second = shrink_state_dict(SMALL, state, new)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert all(first[k].data_ptr() != state[k].data_ptr() for k in first if k in state)  # copies, not views
