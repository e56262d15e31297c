"""The torch builder: MobileNetV3 section 5 building blocks and any input shape."""
import pytest
import torch
from torch import nn

from search_spaces.builder import Bottleneck, SqueezeExcite, build_model
from search_spaces.reference import REFERENCE_SPECS, reference_spec
from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec
from tests.helpers import sampled_specs


@pytest.mark.parametrize("name", sorted(REFERENCE_SPECS))
@pytest.mark.parametrize("resolution, in_channels, classes", [(32, 1, 10), (64, 3, 7)])
def test_reference_specs_build_and_run(name, resolution, in_channels, classes):
    spec = reference_spec(name, resolution=resolution, in_channels=in_channels, num_classes=classes)
    out = build_model(spec).eval()(torch.randn(2, in_channels, resolution, resolution))
    assert out.shape == (2, classes)


def test_sampled_specs_build_and_run():
    for spec in sampled_specs(8, seed=4):
        assert build_model(spec).eval()(torch.randn(1, 1, 32, 32)).shape == (1, 10)


def test_no_expansion_conv_when_exp_equals_input():
    spec = reference_spec("mobilenetv3-large")
    first = build_model(spec).blocks[0]
    convs = [m for m in first.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and convs[0].groups == 16  # depthwise, then projection


def test_se_squeeze_width_and_hard_sigmoid_gate():
    se = SqueezeExcite(72)
    assert se.fc1.out_channels == 24  # make_divisible(72 / 4, 8)
    assert isinstance(se.gate, nn.Hardsigmoid)


def test_residual_only_where_spec_says():
    block = BlockSpec("bneck", 3, 1, 32, 16, False, "relu", skip=True)
    module = Bottleneck(16, block).eval()
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(module(x), module.layers(x) + x)
    no_skip = Bottleneck(16, BlockSpec("bneck", 3, 1, 32, 16)).eval()
    torch.testing.assert_close(no_skip(x), no_skip.layers(x))


def test_hswish_matches_paper_formula():
    x = torch.linspace(-5, 5, 101)
    torch.testing.assert_close(nn.Hardswish()(x), x * torch.nn.functional.relu6(x + 3) / 6)


def test_efficient_last_stage_layout():
    model = build_model(reference_spec("mobilenetv3-small", num_classes=5))
    assert isinstance(model.head.features[1], nn.BatchNorm2d)
    linears = [m for m in model.head.classifier if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(576, 1024), (1024, 5)]
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in model.head.classifier)


def test_head_without_hidden_layer():
    spec = reference_spec("mobilenetv2", num_classes=4)
    linears = [m for m in build_model(spec).head.classifier if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(1280, 4)]


def test_odd_resolution_runs():
    spec = ArchSpec(blocks=(BlockSpec("bneck", 5, 2, 48, 24, True, "hswish"),), head=HeadSpec(64, None),
                    resolution=27, in_channels=2, num_classes=3)
    assert spec.final_resolution == 7
    assert build_model(spec)(torch.randn(1, 2, 27, 27)).shape == (1, 3)
