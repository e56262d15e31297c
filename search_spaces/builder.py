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

import torch
from torch import nn

from search_spaces.blocks.bneck_module import Bottleneck
from search_spaces.blocks.conv_module import RegularConv
from search_spaces.blocks.registry import block_type
from search_spaces.layers import (BN_EPS, BN_MOMENTUM, DEFAULT_LAYERS, ActLayer, ConvBNAct, Layers, NormLayer,
                                  SqueezeExcite, activation, batch_norm)
from search_spaces.spec import ArchSpec, BlockSpec

__all__ = ["ActLayer", "BN_EPS", "BN_MOMENTUM", "Bottleneck", "ConvBNAct", "Head", "Layers", "NormLayer",
           "RegularConv", "SpecNet", "SqueezeExcite", "activation", "batch_norm", "build_block", "build_model",
           "init_weights"]


def build_block(in_channels: int, block: BlockSpec, layers: Layers = DEFAULT_LAYERS) -> nn.Module:
    """One block of the spec as a module (its block type's ``build``)."""
    return block_type(block.op).build(in_channels, block, layers)


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
