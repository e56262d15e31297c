"""NetAdapt proposals (MobileNetV3 4.2): one shrink per expansion layer and per residual
group, each the smallest reduction whose predicted cut reaches delta."""
import math

import pytest

from netadapt.proposals import ProposalConfig, ShrinkProposal, candidate_widths, propose_reductions
from search_spaces.counting import count_madds
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.reference import reference_spec
from search_spaces.rewrite import STEM, expansion_convs, residual_groups, same_layout, with_widths
from tests.helpers import sampled_specs

LARGE = reference_spec("mobilenetv3-large")
SMALL = reference_spec("mobilenetv3-small")
ALL = ProposalConfig(include_stem=True, include_head=True)


def madds_ms(spec):
    """Toy predictor: latency proportional to multiply-adds (1 ms per 10 M)."""
    return count_madds(spec) / 1e7


def _changed_widths(old, new):
    widths = [(old.stem.out_channels, new.stem.out_channels), (old.head.feature_channels, new.head.feature_channels)]
    for a, b in zip(old.blocks, new.blocks):
        widths += [(a.out_channels, b.out_channels), (a.exp_channels, b.exp_channels)]
    return [(a, b) for a, b in widths if a != b]


@pytest.mark.parametrize("spec", [LARGE, SMALL, *sampled_specs(6, seed=2)], ids=lambda s: format_spec(s)[:40])
@pytest.mark.parametrize("granularity", [8, 16])
def test_every_proposal_is_valid_meets_its_cut_and_is_the_smallest_such_reduction(spec, granularity):
    config = ProposalConfig(include_stem=True, include_head=True, granularity=granularity)
    baseline = madds_ms(spec)
    delta = config.delta_ms(baseline)
    proposals = propose_reductions(spec, madds_ms, delta, config)
    assert proposals
    for p in proposals:
        assert parse_spec(format_spec(p.spec)) == p.spec and same_layout(spec, p.spec) is None
        assert expansion_convs(p.spec) == expansion_convs(spec)
        assert granularity <= p.channels_after < p.channels_before and p.channels_after % granularity == 0
        assert all(b >= granularity for _, b in _changed_widths(spec, p.spec))
        assert p.predicted_latency_ms == madds_ms(p.spec) and p.baseline_latency_ms == baseline
        if p.meets_cut:
            assert baseline - p.predicted_latency_ms >= delta
        else:
            assert p.channels_after == min(w for w in candidate_widths(p.channels_before, granularity,
                                                                       config.max_cut_fraction)
                                           if w != _input_width(spec, p))
        larger = p.channels_after + granularity
        if larger < p.channels_before and larger != _input_width(spec, p):
            smaller_step = _rewrite_like(spec, p, larger)
            assert baseline - madds_ms(smaller_step) < delta  # NetAdapt: the smallest reduction that meets delta


def _input_width(spec, p):
    return spec.in_channels_of(p.blocks[0]) if p.kind == "expansion" else None


def _rewrite_like(spec, p, width):
    if p.kind == "expansion":
        return with_widths(spec, {p.blocks[0]: {"exp_channels": width}})
    if p.kind == "head":
        return with_widths(spec, {}, feature_channels=width)
    return with_widths(spec, {i: {"out_channels": width} for i in (p.blocks or (STEM,))})


def test_mobilenetv3_large_proposals_cover_each_expansion_and_each_group():
    proposals = propose_reductions(LARGE, madds_ms, 0.01 * madds_ms(LARGE), ALL)
    expansions = [p.blocks[0] for p in proposals if p.kind == "expansion"]
    assert expansions == list(range(1, 15))  # block 0 has exp == in: no expansion layer
    groups = [p.blocks for p in proposals if p.kind == "bottleneck"]
    assert tuple(groups) == residual_groups(LARGE)
    assert [p.kind for p in proposals].count("stem") == 0  # the stem is tied to block 0's residual
    stem_group = next(p for p in proposals if p.blocks == (STEM, 0))
    assert stem_group.spec.stem.out_channels == stem_group.spec.blocks[0].out_channels == stem_group.channels_after
    assert stem_group.label() == f"bottleneck stem,b0 16->{stem_group.channels_after}"
    for p in proposals:
        if p.kind == "bottleneck":
            assert {p.spec.blocks[i].out_channels for i in p.blocks if i != STEM} == {p.channels_after}


def test_small_gets_a_stem_and_a_head_proposal_only_when_asked():
    kinds = [p.kind for p in propose_reductions(SMALL, madds_ms, 0.01 * madds_ms(SMALL))]
    assert "stem" not in kinds and "head" not in kinds
    proposals = {p.kind: p for p in propose_reductions(SMALL, madds_ms, 0.01 * madds_ms(SMALL), ALL)}
    assert proposals["stem"].blocks == () and proposals["stem"].spec.stem.out_channels == 8
    assert proposals["stem"].spec.blocks[0].exp_channels == 8  # block 0's depthwise runs on the stem output
    assert proposals["head"].spec.head.feature_channels == proposals["head"].channels_after < 576


def test_unreachable_cut_gives_the_minimum_width_flagged_and_skips_removing_an_expansion_conv():
    unbounded = ProposalConfig(include_stem=True, include_head=True, max_cut_fraction=1.0)
    proposals = propose_reductions(LARGE, madds_ms, 1e9, unbounded)
    assert proposals and not any(p.meets_cut for p in proposals)
    assert all(p.channels_after == 8 for p in proposals)
    b1 = next(p for p in proposals if p.kind == "expansion" and p.blocks == (1,))
    assert b1.spec.blocks[1].exp_channels == 8  # 16 (== its input) was skipped: the conv would vanish
    assert b1.label() == "expansion b1 64->8"


def test_smallest_reduction_meeting_the_cut_with_a_non_monotonic_predictor():
    # a measured table need not be monotonic: only b4's expansion width matters here
    cuts = {232: 0.5, 224: 2.5, 216: 1.0, 208: 3.0}

    def predict(spec):
        return 100.0 - cuts.get(spec.blocks[4].exp_channels, 0.0 if spec.blocks[4].exp_channels == 240 else 5.0)

    b4 = next(p for p in propose_reductions(SMALL, predict, 2.0) if p.kind == "expansion" and p.blocks == (4,))
    assert (b4.channels_after, b4.meets_cut, b4.cut_ms) == (224, True, 2.5)
    assert b4.label() == "expansion b4 240->224"


def test_widths_at_the_granularity_give_no_proposal():
    spec = SMALL.replace(stem=SMALL.stem.__class__(8, 3, 2, "hswish"))
    spec = spec.replace_block(0, exp_channels=8)
    kinds = [(p.kind, p.blocks) for p in propose_reductions(spec, madds_ms, 0.0, ALL)]
    assert ("stem", ()) not in kinds and ("bottleneck", (0,)) in kinds
    assert ("bottleneck", (0,)) not in [(p.kind, p.blocks) for p in
                                        propose_reductions(spec, madds_ms, 0.0, ProposalConfig(granularity=16))]


def test_candidate_widths_are_multiples_of_the_granularity_below_the_width():
    assert candidate_widths(40, 8) == [32, 24, 16, 8]
    assert candidate_widths(20, 8) == [16, 8]
    assert candidate_widths(8, 8) == []


def test_candidate_widths_stop_at_the_largest_cut_allowed():
    assert candidate_widths(576, 8, 0.5) == list(range(568, 287, -8))
    assert candidate_widths(40, 8, 0.5) == [32, 24]  # 20 rounds up to 24
    assert candidate_widths(16, 8, 0.5) == [8]
    assert candidate_widths(40, 8, 1.0) == [32, 24, 16, 8]


def test_no_proposal_removes_more_than_the_allowed_fraction_even_when_delta_asks_for_it():
    bounded = propose_reductions(SMALL, madds_ms, 0.5 * madds_ms(SMALL), ALL)  # no single layer saves half
    assert bounded and not any(p.meets_cut for p in bounded)
    assert all(p.channels_after >= p.channels_before / 2 for p in bounded)
    head = next(p for p in bounded if p.kind == "head")
    assert (head.channels_before, head.channels_after) == (576, 288)
    unbounded = propose_reductions(SMALL, madds_ms, 0.5 * madds_ms(SMALL), ProposalConfig(
        include_stem=True, include_head=True, max_cut_fraction=1.0))
    assert next(p for p in unbounded if p.kind == "head").channels_after == 8


def test_netadapt_runs_recorded_before_the_bound_resume_unbounded():
    from netadapt.loop import NetAdaptConfig

    assert NetAdaptConfig.from_dict({"target_ms": 1.0}).max_cut_fraction == 1.0
    assert NetAdaptConfig(target_ms=1.0).max_cut_fraction == 0.5
    with pytest.raises(ValueError, match="max_cut_fraction"):
        NetAdaptConfig(target_ms=1.0, max_cut_fraction=0.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"delta_fraction": 0.0}, "delta_fraction"), ({"delta_fraction": 1.5}, "delta_fraction"),
    ({"granularity": 0}, "granularity"), ({"granularity": 8.0}, "granularity"), ({"include_stem": 1}, "include_stem"),
    ({"max_cut_fraction": 0.0}, "max_cut_fraction"), ({"max_cut_fraction": 1.5}, "max_cut_fraction"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProposalConfig(**kwargs)


@pytest.mark.parametrize("delta", [-1.0, math.nan, math.inf])
def test_rejects_bad_delta(delta):
    with pytest.raises(ValueError, match="delta_ms"):
        propose_reductions(SMALL, madds_ms, delta)


def test_delta_is_a_fraction_of_the_initial_latency():
    assert ProposalConfig().delta_ms(40.0) == pytest.approx(0.4)
    assert isinstance(propose_reductions(SMALL, madds_ms, 0.1)[0], ShrinkProposal)


def test_without_a_proposal_meeting_delta_only_substantial_savings_compete():
    """A proposal saving almost nothing would win Δaccuracy/|Δlatency| while the model still
    learns; only those saving at least half the largest saving on offer stay."""
    from netadapt.proposals import substantial_savings

    found = propose_reductions(SMALL, madds_ms, 0.5 * madds_ms(SMALL), ALL)
    kept = substantial_savings(found)
    largest = max(p.cut_ms for p in found)
    assert kept and all(p.cut_ms >= 0.5 * largest for p in kept)
    assert len(kept) < len(found)  # the small savers are out
    assert substantial_savings([p for p in found if p.cut_ms <= 0]) == []


@pytest.mark.parametrize("delta_share", [0.01, 0.05, 0.5])
def test_batched_predictions_give_the_same_proposals_in_few_calls(delta_share):
    # a lazy table measures every new width it is asked for: sizing asks in batches, and
    # asks nothing more of a proposal whose deepest cut misses the delta
    calls, asked = [], []

    def many(specs):
        calls.append(len(specs))
        asked.extend(specs)
        return [madds_ms(s) for s in specs]

    delta = delta_share * madds_ms(LARGE)
    one_by_one = propose_reductions(LARGE, madds_ms, delta, ALL)
    batched = propose_reductions(LARGE, madds_ms, delta, ALL, predict_many=many)
    assert [(p.label(), p.spec, p.meets_cut) for p in batched] == [(p.label(), p.spec, p.meets_cut) for p in one_by_one]
    assert len(calls) <= 1 + math.ceil(math.log2(LARGE.blocks[-1].exp_channels))
    walked = {p.label() for p in batched if p.meets_cut}
    widths = {p.label(): len(candidate_widths(p.channels_before, 8, 0.5)) for p in batched}
    assert len(asked) <= 1 + len(batched) + sum(2 * widths[label] for label in walked)
    if delta_share == 0.5:  # no proposal reaches it: one call, the deepest cut of each
        assert not walked and calls == [1 + len(batched)]
