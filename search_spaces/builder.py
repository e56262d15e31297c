"""Turn an :class:`ArchSpec` into a ``torch.nn.Module`` (MobileNetV3 section 5).

Layer layout follows torchvision's ``mobilenetv3.py`` so that the golden parameter counts
of the paper's Tables 1-2 and torchvision are reproduced exactly: conv (no bias) + BN + activation everywhere, SE with
ReLU squeeze and hard-sigmoid gate, linear projection, residual where the spec says so,
and the efficient last stage (pool before the 1x1 hidden conv, which has no BN).

Every part has a name, not a position (timm's ``conv_pw``/``conv_dw``/``se``/``conv_pwl``), so a state-dict key means the same layer after a spec rewrite changes
widths, which NetAdapt's weight transfer relies on: ``stem.{conv,bn}``,
``blocks.<i>.conv_pw|conv_dw|conv_pwl.{conv,bn}`` (bottleneck), ``blocks.<i>.conv.{conv,bn}``
(regular conv), ``blocks.<i>.se.conv_reduce|conv_expand``,
``head.conv_features.{conv,bn}``, ``head.hidden``, ``head.classifier``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from search_spaces.spec import ArchSpec, BlockSpec, se_channels

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}


def activation(name: str) -> nn.Module:
    """The nonlinearity ``name`` (h-swish = x * ReLU6(x + 3) / 6, section 5.2)."""
    return _ACTIVATIONS[name](inplace=True)


class ConvBNAct(nn.Sequential):
    """k x k convolution without bias (``conv``), batch norm (``bn``), optional activation
    (``act``): named children, so ``stem.conv.weight`` means the same thing in every spec."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str | None = None) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            bn=nn.BatchNorm2d(out_channels),
        )
        if act is not None:
            layers["act"] = activation(act)
        super().__init__(layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite with a hard-sigmoid gate (section 5.3): ``conv_reduce`` to
    ``se_channels(channels)``, ReLU, ``conv_expand`` back, hard-sigmoid (timm's names)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = se_channels(channels)
        self.conv_reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        scale = self.gate(self.conv_expand(self.act(self.conv_reduce(scale))))
        return x * scale


class Bottleneck(nn.Module):
    """Inverted residual bottleneck (MobileNetV2/V3 "bneck") with timm's part names:
    ``conv_pw`` 1x1 expansion (``None`` when ``exp_channels == in_channels``, Table 1 row 2),
    ``conv_dw`` k x k depthwise, ``se`` (``None`` without SE), ``conv_pwl`` linear 1x1
    projection, and the identity residual when ``block.skip``."""

    def __init__(self, in_channels: int, block: BlockSpec) -> None:
        super().__init__()
        exp = block.exp_channels
        self.conv_pw = ConvBNAct(in_channels, exp, 1, act=block.act) if exp != in_channels else None
        self.conv_dw = ConvBNAct(exp, exp, block.kernel, block.stride, groups=exp, act=block.act)
        self.se = SqueezeExcite(exp) if block.se else None
        self.conv_pwl = ConvBNAct(exp, block.out_channels, 1)
        self.skip = block.skip

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The block without its residual."""
        if self.conv_pw is not None:
            x = self.conv_pw(x)
        x = self.conv_dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.conv_pwl(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return out + x if self.skip else out


class RegularConv(nn.Module):
    """MnasNet's regular convolution block: ``conv`` (k x k conv, BN, act), optional ``se``
    (``None`` without SE), optional residual."""

    def __init__(self, in_channels: int, block: BlockSpec) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, block.out_channels, block.kernel, block.stride, act=block.act)
        self.se = SqueezeExcite(block.out_channels) if block.se else None
        self.skip = block.skip

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The block without its residual."""
        x = self.conv(x)
        return x if self.se is None else self.se(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return out + x if self.skip else out


def build_block(in_channels: int, block: BlockSpec) -> nn.Module:
    """One block of the spec as a module."""
    if block.op == "conv":
        return RegularConv(in_channels, block)
    return Bottleneck(in_channels, block)


class Head(nn.Module):
    """Efficient last stage (section 5.1): ``conv_features`` (1x1 conv + BN + act), global
    ``pool``, ``hidden`` (the 1x1 conv without BN, as a Linear; ``None`` without one) and its
    ``hidden_act``, ``dropout``, ``classifier`` (Linear)."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        head = spec.head
        last = spec.blocks[-1].out_channels
        self.conv_features = ConvBNAct(last, head.feature_channels, 1, act=head.act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        width = head.feature_channels
        self.hidden: nn.Linear | None = None
        self.hidden_act: nn.Module | None = None
        if head.hidden_channels is not None:
            self.hidden = nn.Linear(width, head.hidden_channels)
            self.hidden_act = activation(head.act)
            width = head.hidden_channels
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = nn.Linear(width, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.conv_features(x)), 1)
        if self.hidden is not None:
            x = self.hidden_act(self.hidden(x))
        return self.classifier(self.dropout(x))


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
