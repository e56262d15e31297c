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
