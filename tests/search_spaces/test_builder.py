"""The torch builder: MobileNetV3 section 5 building blocks and any input shape."""
import pytest
import torch
from torch import nn

from search_spaces.builder import Bottleneck, SqueezeExcite, activation, build_model
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


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """MobileNetV3 section 5.2: ReLU6(x + 3) / 6."""
    return torch.nn.functional.relu6(x + 3) / 6


def test_se_squeezes_to_a_quarter_and_scales_channels_by_a_hard_sigmoid_gate():
    se = SqueezeExcite(72).eval()
    assert se.conv_reduce.out_channels == 24  # make_divisible(72 / 4, 8)
    x = torch.randn(2, 72, 5, 5)
    pooled = x.mean(dim=(2, 3), keepdim=True)
    gate = hard_sigmoid(se.conv_expand(torch.relu(se.conv_reduce(pooled))))
    torch.testing.assert_close(se(x), x * gate)


def test_residual_only_where_spec_says():
    block = BlockSpec("bneck", 3, 1, 32, 16, False, "relu", skip=True)
    module = Bottleneck(16, block).eval()
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(module(x), module.branch(x) + x)
    no_skip = Bottleneck(16, BlockSpec("bneck", 3, 1, 32, 16)).eval()
    torch.testing.assert_close(no_skip(x), no_skip.branch(x))


@pytest.mark.parametrize("name, formula", [("relu", torch.relu), ("relu6", torch.nn.functional.relu6),
                                           ("hswish", lambda x: x * hard_sigmoid(x))])
def test_a_specs_nonlinearity_name_is_the_papers_function(name, formula):
    x = torch.linspace(-8, 8, 161)
    torch.testing.assert_close(activation(name)(x.clone()), formula(x))


def test_efficient_last_stage_layout():
    model = build_model(reference_spec("mobilenetv3-small", num_classes=5))
    assert isinstance(model.head.conv_features.bn, nn.BatchNorm2d)
    linears = [model.head.hidden, model.head.classifier]
    assert [(l.in_features, l.out_features) for l in linears] == [(576, 1024), (1024, 5)]
    assert model.head.dropout.p == 0.2


def test_head_without_hidden_layer():
    spec = reference_spec("mobilenetv2", num_classes=4)
    head = build_model(spec).head
    assert head.hidden is None and head.hidden_act is None
    assert (head.classifier.in_features, head.classifier.out_features) == (1280, 4)


def test_state_dict_names_are_named_parts_not_positions():
    small = build_model(reference_spec("mobilenetv3-small")).state_dict()
    assert "stem.conv.weight" in small and "stem.bn.running_var" in small
    # Small's block 0 has exp == in (16): no expansion conv, an SE on the depthwise output
    assert not any(k.startswith("blocks.0.conv_pw.") for k in small)
    assert {"blocks.0.conv_dw.conv.weight", "blocks.0.se.conv_reduce.weight", "blocks.0.se.conv_expand.bias",
            "blocks.0.conv_pwl.bn.weight", "blocks.1.conv_pw.conv.weight"} <= set(small)
    assert {"head.conv_features.conv.weight", "head.hidden.weight", "head.classifier.weight"} <= set(small)
    # a width change that adds an expansion conv adds keys and leaves the others' meaning alone
    stem8 = reference_spec("mobilenetv3-small")
    stem8 = stem8.replace(stem=stem8.stem.__class__(8, 3, 2, "hswish"))
    names = set(build_model(stem8).state_dict())
    assert names - set(small) == {f"blocks.0.conv_pw.{p}" for p in
                                  ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                                   "bn.num_batches_tracked")}


def test_regular_conv_block_parts():
    spec = ArchSpec(blocks=(BlockSpec("conv", 3, 1, None, 16, True, "relu", skip=True),), resolution=8)
    block = build_model(spec).blocks[0].eval()
    assert block.conv.conv.kernel_size == (3, 3) and block.se.conv_reduce.out_channels == 8
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(block(x), block.branch(x) + x)


def test_odd_resolution_runs():
    spec = ArchSpec(blocks=(BlockSpec("bneck", 5, 2, 48, 24, True, "hswish"),), head=HeadSpec(64, None),
                    resolution=27, in_channels=2, num_classes=3)
    assert spec.final_resolution == 7
    assert build_model(spec)(torch.randn(1, 2, 27, 27)).shape == (1, 3)


def test_batch_norm_is_mobilenetv3s_eps_and_momentum_by_default():
    norms = [m for m in build_model(reference_spec("mobilenetv3-small")).modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all((m.eps, m.momentum) == (1e-3, 0.01) for m in norms)  # torchvision's mobilenet_v3


def test_norm_and_activation_layers_are_injectable():
    spec = reference_spec("mobilenetv3-small", resolution=32, in_channels=1, num_classes=10)
    seen = []

    def act(name):
        seen.append(name)
        return nn.ReLU6() if name == "hswish" else nn.ReLU()

    model = build_model(spec, norm_layer=lambda c: nn.BatchNorm2d(c, momentum=0.1), act_layer=act)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all((m.eps, m.momentum) == (1e-5, 0.1) for m in norms)
    assert not any(isinstance(m, nn.Hardswish) for m in model.modules()) and set(seen) == {"relu", "hswish"}
    group = build_model(spec, norm_layer=lambda c: nn.GroupNorm(1, c))
    assert group(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_old_checkpoints_load_with_the_new_defaults():
    spec = reference_spec("mobilenetv3-small", resolution=32, in_channels=1, num_classes=10)
    old = build_model(spec, norm_layer=nn.BatchNorm2d).state_dict()  # PyTorch's BN defaults, as before
    build_model(spec).load_state_dict(old)  # strict: the same keys and shapes


@pytest.mark.parametrize("name", ["mobilenetv3-small", "mobilenetv2"])
def test_forward_is_head_of_features(name):
    spec = reference_spec(name, resolution=32, in_channels=1, num_classes=10)
    model = build_model(spec).eval()
    x = torch.randn(2, 1, 32, 32)
    features = model.forward_features(x)
    assert features.shape == (2, spec.head.feature_channels, spec.final_resolution, spec.final_resolution)
    torch.testing.assert_close(model.forward_head(features), model(x))
    width = spec.head.hidden_channels or spec.head.feature_channels
    assert model.forward_head(features, pre_logits=True).shape == (2, width)
