"""The floor: the smallest spec NetAdapt's proposals can reach, remembered per process."""
from netadapt.floor import floor_spec
from netadapt.proposals import ProposalConfig, propose_reductions
from search_spaces.reference import mobilenetv3_small


def test_the_floor_has_no_proposal_left_and_is_remembered():
    spec = mobilenetv3_small(resolution=32, num_classes=10)
    floor = floor_spec(spec, ProposalConfig())
    assert propose_reductions(floor, lambda s: 1.0, 1e12, ProposalConfig()) == []
    assert sum(b.out_channels for b in floor.blocks) < sum(b.out_channels for b in spec.blocks)
    assert floor_spec(spec, ProposalConfig()) is floor  # asked again: the remembered walk
    assert floor_spec.__wrapped__(spec, ProposalConfig()) == floor  # the same walk done afresh


def _walk_by_proposals(spec, config):
    """The floor as NetAdapt's proposals reach it: the first proposal of a cut too large to meet, repeated."""
    while proposals := propose_reductions(spec, lambda s: sum(b.out_channels + (b.exp_channels or 0) for b in s.blocks)
                                          + s.stem.out_channels + s.head.feature_channels, 1e12, config):
        spec = proposals[0].spec
    return spec


def test_the_floor_is_where_the_proposals_walk_ends():
    from search_spaces.reference import mobilenetv3_large

    for spec in (mobilenetv3_small(resolution=32, num_classes=10), mobilenetv3_large(resolution=64, num_classes=10)):
        for config in (ProposalConfig(), ProposalConfig(include_stem=True, include_head=True, granularity=16)):
            assert floor_spec.__wrapped__(spec, config) == _walk_by_proposals(spec, config)
