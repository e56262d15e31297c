"""Turn an :class:`ArchSpec` into a ``torch.nn.Module`` (MobileNetV3 section 5).

Layer layout follows torchvision's ``mobilenetv3.py`` so that the golden parameter counts
of the paper's Tables 1-2 and torchvision are reproduced exactly: conv (no bias) + BN + activation everywhere, SE with
ReLU squeeze and hard-sigmoid gate, linear projection, residual where the spec says so,
and the efficient last stage (pool before the 1x1 hidden conv, which has no BN).

Batch norm is torchvision's and timm's MobileNetV3 setting (``eps=1e-3, momentum=0.01``,
the TF reference's values), not PyTorch's defaults; the norm layer and the activations are
injectable (``build_model(spec, norm_layer=..., act_layer=...)``), as timm's
``norm_layer``/``act_layer``. ``forward_features`` runs up to the last conv before pooling
and ``forward_head`` the rest, as torchvision's ``features`` and timm's methods.

Every part has a name, not a position (timm's ``conv_pw``/``conv_dw``/``se``/``conv_pwl``), so a state-dict key means the same layer after a spec rewrite changes
widths, which NetAdapt's weight transfer relies on: ``stem.{conv,bn}``,
``blocks.<i>.conv_pw|conv_dw|conv_pwl.{conv,bn}`` (bottleneck), ``blocks.<i>.conv.{conv,bn}``
(regular conv), ``blocks.<i>.se.conv_reduce|conv_expand``,
``head.conv_features.{conv,bn}``, ``head.hidden``, ``head.classifier``.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from search_spaces.spec import ArchSpec, BlockSpec, se_channels

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
"""torchvision's ``mobilenet_v3`` (``partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)``) and
timm's MobileNetV3 (TF's BN defaults); PyTorch's own defaults are 1e-5 and 0.1."""

NormLayer = Callable[[int], nn.Module]
"""channels -> a normalisation module (``bn`` of every conv)."""
ActLayer = Callable[[str], nn.Module]
"""an activation name of the spec (``relu``, ``relu6``, ``hswish``) -> a module."""


def activation(name: str) -> nn.Module:
    """The nonlinearity ``name`` (h-swish = x * ReLU6(x + 3) / 6, section 5.2)."""
    return _ACTIVATIONS[name](inplace=True)


def batch_norm(channels: int) -> nn.Module:
    """The default norm layer: ``BatchNorm2d`` with MobileNetV3's eps and momentum."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


@dataclass(frozen=True)
class Layers:
    """The factories every part is built with (timm's ``norm_layer`` / ``act_layer``)."""

    norm: NormLayer = batch_norm
    act: ActLayer = activation


DEFAULT_LAYERS = Layers()


class ConvBNAct(nn.Sequential):
    """k x k convolution without bias (``conv``), norm (``bn``), optional activation
    (``act``): named children, so ``stem.conv.weight`` means the same thing in every spec."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 groups: int = 1, act: str | None = None, *, layers: Layers = DEFAULT_LAYERS) -> None:
        parts: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            bn=layers.norm(out_channels),
        )
        if act is not None:
            parts["act"] = layers.act(act)
        super().__init__(parts)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite with a hard-sigmoid gate (section 5.3): ``conv_reduce`` to
    ``se_channels(channels)``, ReLU, ``conv_expand`` back, hard-sigmoid (timm's names)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = se_channels(channels)
        self.conv_reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)  # fixed, as timm's MobileNetV3 forces ReLU in its SE
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

    def __init__(self, in_channels: int, block: BlockSpec, layers: Layers = DEFAULT_LAYERS) -> None:
        super().__init__()
        exp = block.exp_channels
        self.conv_pw = ConvBNAct(in_channels, exp, 1, act=block.act, layers=layers) if exp != in_channels else None
        self.conv_dw = ConvBNAct(exp, exp, block.kernel, block.stride, groups=exp, act=block.act, layers=layers)
        self.se = SqueezeExcite(exp) if block.se else None
        self.conv_pwl = ConvBNAct(exp, block.out_channels, 1, layers=layers)
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

    def __init__(self, in_channels: int, block: BlockSpec, layers: Layers = DEFAULT_LAYERS) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_channels, block.out_channels, block.kernel, block.stride, act=block.act, layers=layers)
        self.se = SqueezeExcite(block.out_channels) if block.se else None
        self.skip = block.skip

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The block without its residual."""
        x = self.conv(x)
        return x if self.se is None else self.se(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return out + x if self.skip else out


def build_block(in_channels: int, block: BlockSpec, layers: Layers = DEFAULT_LAYERS) -> nn.Module:
    """One block of the spec as a module."""
    if block.op == "conv":
        return RegularConv(in_channels, block, layers)
    return Bottleneck(in_channels, block, layers)


class Head(nn.Module):
    """Efficient last stage (section 5.1): ``conv_features`` (1x1 conv + BN + act), global
    ``pool``, ``hidden`` (the 1x1 conv without BN, as a Linear; ``None`` without one) and its
    ``hidden_act``, ``dropout``, ``classifier`` (Linear). ``features`` is the part before
    pooling (the feature conv), ``classify`` the rest."""

    def __init__(self, spec: ArchSpec, layers: Layers = DEFAULT_LAYERS) -> None:
        super().__init__()
        head = spec.head
        last = spec.blocks[-1].out_channels
        self.conv_features = ConvBNAct(last, head.feature_channels, 1, act=head.act, layers=layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        width = head.feature_channels
        self.hidden: nn.Linear | None = None
        self.hidden_act: nn.Module | None = None
        if head.hidden_channels is not None:
            self.hidden = nn.Linear(width, head.hidden_channels)
            self.hidden_act = layers.act(head.act)
            width = head.hidden_channels
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = nn.Linear(width, spec.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 1x1 feature conv (the last conv before pooling)."""
        return self.conv_features(x)

    def classify(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, hidden conv and classifier on the feature conv's output; ``pre_logits``
        stops before the dropout and classifier (timm's ``forward_head(pre_logits=True)``)."""
        x = torch.flatten(self.pool(x), 1)
        if self.hidden is not None:
            x = self.hidden_act(self.hidden(x))
        return x if pre_logits else self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


class SpecNet(nn.Module):
    """The network an :class:`ArchSpec` describes; ``self.spec`` keeps the spec and
    ``self.layers`` the norm and activation factories it was built with."""

    def __init__(self, spec: ArchSpec, layers: Layers = DEFAULT_LAYERS) -> None:
        super().__init__()
        self.spec, self.layers = spec, layers
        stem = spec.stem
        self.stem = ConvBNAct(spec.in_channels, stem.out_channels, stem.kernel, stem.stride, act=stem.act, layers=layers)
        self.blocks = nn.Sequential(*(build_block(spec.in_channels_of(i), b, layers) for i, b in enumerate(spec.blocks)))
        self.head = Head(spec, layers)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, blocks and the head's feature conv: the feature map before global pooling
        (torchvision's ``features``; timm's ``forward_features``)."""
        return self.head.features(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooling, hidden conv, dropout and classifier on :meth:`forward_features`' output."""
        return self.head.classify(x, pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def init_weights(model: nn.Module) -> None:
    """torchvision's MobileNetV3 initialisation (kaiming fan-out convs, N(0, 0.01) linears)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
            if getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


def build_model(spec: ArchSpec, *, norm_layer: NormLayer | None = None, act_layer: ActLayer | None = None) -> SpecNet:
    """Build the torch module of ``spec`` (weights initialised from torch's global RNG;
    seed it with ``torch.manual_seed`` for reproducibility).

    Args:
        norm_layer: channels -> norm module for every conv's ``bn`` (default :func:`batch_norm`,
            eps 1e-3 and momentum 0.01); e.g. ``functools.partial(nn.BatchNorm2d, momentum=0.1)``.
        act_layer: activation name -> module (default :func:`activation`).
    """
    layers = Layers(norm_layer or DEFAULT_LAYERS.norm, act_layer or DEFAULT_LAYERS.act)
    return SpecNet(spec, layers)
