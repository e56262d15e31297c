"""Turn an :class:`ArchSpec` into a ``torch.nn.Module`` (MobileNetV3 section 5).

Layer layout follows torchvision's ``mobilenetv3.py`` so that the golden parameter counts
of PAPER.md are reproduced exactly: conv (no bias) + BN + activation everywhere, SE with
ReLU squeeze and hard-sigmoid gate, linear projection, residual where the spec says so,
and the efficient last stage (pool before the 1x1 hidden conv, which has no BN).
"""
from __future__ import annotations

import torch
from torch import nn

from search_spaces.spec import ArchSpec, BlockSpec, se_channels

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}


def activation(name: str) -> nn.Module:
    """The nonlinearity ``name`` (h-swish = x * ReLU6(x + 3) / 6, section 5.2)."""
    return _ACTIVATIONS[name](inplace=True)


class ConvBNAct(nn.Sequential):
    """k x k convolution without bias, batch norm, optional activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str | None = None) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite with a hard-sigmoid gate (section 5.3)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = se_channels(channels)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        scale = self.gate(self.fc2(self.act(self.fc1(scale))))
        return x * scale


class Bottleneck(nn.Module):
    """Inverted residual bottleneck (MobileNetV2/V3 "bneck"): optional 1x1 expansion,
    k x k depthwise conv, optional SE, linear 1x1 projection, optional residual.
    No expansion conv when ``exp_channels == in_channels`` (Table 1 row 2)."""

    def __init__(self, in_channels: int, block: BlockSpec) -> None:
        super().__init__()
        exp = block.exp_channels
        layers: list[nn.Module] = []
        if exp != in_channels:
            layers.append(ConvBNAct(in_channels, exp, 1, act=block.act))
        layers.append(ConvBNAct(exp, exp, block.kernel, block.stride, groups=exp, act=block.act))
        if block.se:
            layers.append(SqueezeExcite(exp))
        layers.append(ConvBNAct(exp, block.out_channels, 1))
        self.layers = nn.Sequential(*layers)
        self.skip = block.skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out + x if self.skip else out


class RegularConv(nn.Module):
    """MnasNet's regular convolution block: k x k conv, BN, act, optional SE and residual."""

    def __init__(self, in_channels: int, block: BlockSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(in_channels, block.out_channels, block.kernel, block.stride, act=block.act)]
        if block.se:
            layers.append(SqueezeExcite(block.out_channels))
        self.layers = nn.Sequential(*layers)
        self.skip = block.skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out + x if self.skip else out


def build_block(in_channels: int, block: BlockSpec) -> nn.Module:
    """One block of the spec as a module."""
    if block.op == "conv":
        return RegularConv(in_channels, block)
    return Bottleneck(in_channels, block)


class Head(nn.Module):
    """Efficient last stage (section 5.1): 1x1 conv + BN + act, global pool, 1x1 conv
    without BN + act (as a Linear), dropout, classifier."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        head = spec.head
        last = spec.blocks[-1].out_channels
        self.features = ConvBNAct(last, head.feature_channels, 1, act=head.act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        layers: list[nn.Module] = []
        width = head.feature_channels
        if head.hidden_channels is not None:
            layers += [nn.Linear(width, head.hidden_channels), activation(head.act)]
            width = head.hidden_channels
        layers += [nn.Dropout(head.dropout), nn.Linear(width, spec.num_classes)]
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class SpecNet(nn.Module):
    """The network an :class:`ArchSpec` describes; ``self.spec`` keeps the spec."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = ConvBNAct(spec.in_channels, spec.stem.out_channels, spec.stem.kernel, spec.stem.stride, act=spec.stem.act)
        self.blocks = nn.Sequential(*(build_block(spec.in_channels_of(i), b) for i, b in enumerate(spec.blocks)))
        self.head = Head(spec)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def init_weights(model: nn.Module) -> None:
    """torchvision's MobileNetV3 initialisation (kaiming fan-out convs, N(0, 0.01) linears)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


def build_model(spec: ArchSpec) -> SpecNet:
    """Build the torch module of ``spec`` (weights initialised from torch's global RNG;
    seed it, or use ``torch.Generator``-free ``torch.manual_seed``, for reproducibility)."""
    return SpecNet(spec)
