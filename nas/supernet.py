"""A weight-sharing supernet of the MnasNet space's MBConv part (one-shot search: once-for-all,
BigNAS, TuNAS).

Every architecture of :class:`search_spaces.mnasnet_space.MnasNetMBConvSpace` (and its
small-head and MobileNetV3-Small-stage variants) is a sub-network of one :class:`Supernet`; its
weights are slices of the supernet's:

- **kernel** (once-for-all, Cai et al. 2020, section 3.2): every k x k weight is stored at the
  largest kernel (5x5); a 3x3 layer uses the centre 3x3 crop. Once-for-all adds a learned 9x9
  transform of the crop; it is left out here (BigNAS, Yu et al. 2020, shares the plain crop).
- **width** (once-for-all section 3.2, "elastic width"): an MBConv's expansion channels are
  stored at the widest choice (6 x the widest input) and a narrower layer takes the first k;
  :meth:`Supernet.sort_channels` reorders them by importance (L1 norm of the projection's
  weights) so the first k are the most important ones. Output widths (the ``filters`` choice)
  and input widths are first-k slices as well.
- **depth** (once-for-all "elastic depth"): each stage holds its deepest choice; a shallower
  stage runs its first blocks and skips the rest.
- **op**: the supernet covers the MnasNet space's MBConv part
  (:class:`search_spaces.mnasnet_space.MnasNetMBConvSpace`: MBConv3 and MBConv6, which share
  one weight, each with its identity residual), once-for-all's space. The full space's regular
  conv, depthwise-separable conv and blocks without their residual need weights of their own
  that only paths through them train; measured, such a supernet leaves every sampled path at
  chance after minutes of CPU training (``results/search/README.md``).
- **SE and nonlinearity**: SE on/off selects whether the block's (sliced) SE runs; ReLU or
  h-swish is parameter-free.

Initialization is BigNAS's (section 3.2): the last BatchNorm scale of every residual block
(all but the first of each stage) starts at zero, so each such block starts as the identity.

BatchNorm layers hold the widest statistics and are sliced too; the statistics of a
sub-network are only meaningful after recalibration (once-for-all section 3.3), which
:mod:`nas.supernet_eval` does before every evaluation. :func:`extract_subnet` copies a
sub-network's slices into a stand-alone :class:`search_spaces.builder.SpecNet` with the same
parameter names, so a found architecture leaves the supernet as an ordinary model.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks.registry import block_type
from search_spaces.builder import ConvBNAct, batch_norm, build_model, init_weights
from search_spaces.layers import centre_crop, reach
from search_spaces.mnasnet_space import DECISION_NAMES, DECISIONS_PER_STAGE, MnasNetSpace
from search_spaces.registry import make_space
from search_spaces.rewrite import same_layout
from search_spaces.spec import ArchSpec, BlockSpec, se_channels

MAX_KERNEL = 5
MAX_EXPANSION = 6
SUPERNET_SPACES = ("mnasnet-mbconv", "mnasnet-small-mbconv", "mnasnet-v3small-mbconv")
BRANCH_TYPES = ("bneck",)
"""The block types with an elastic branch here (the MBConv); another registered type needs
its own branch class in :class:`SuperBlock` before a supernet holds it."""
Layout = tuple[tuple[BlockSpec, ...], ...]
"""A sub-network as the blocks of each stage (its depth is the length of each tuple)."""

_ACTS = {"relu": F.relu, "relu6": F.relu6, "hswish": F.hardswish}


class ElasticConvBN(nn.Module):
    """A conv stored at its widest shape (``conv``: in, out, kernel) with BatchNorm (``bn``),
    both sliced to the first channels at run time; ``depthwise`` ties groups to the width."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, *, depthwise: bool = False) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, groups=in_channels if depthwise else 1, bias=False)
        self.bn = batch_norm(out_channels)  # the builder's eps, so extract_subnet computes the same
        self.bn_momentum: float = 0.1  # set to 1/(k+1) by recalibration: cumulative average

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int = 1, stride: int = 1,
                act: str | None = None) -> torch.Tensor:
        in_channels = x.shape[1]
        if self.depthwise:
            weight, groups = self.conv.weight[:in_channels], in_channels
        else:
            weight, groups = self.conv.weight[:out_channels, :in_channels], 1
        kernel = reach(kernel, max(x.shape[-2:]))  # the same outputs; 1x1 and 2x2 maps run cheaper
        weight = centre_crop(weight, kernel, kernel) if kernel != self.conv.kernel_size[0] else weight
        x = F.conv2d(x, weight, None, stride, (kernel - 1) // 2, 1, groups)
        c, bn = x.shape[1], self.bn
        x = F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c], self.training,
                         self.bn_momentum, bn.eps)
        return x if act is None else _ACTS[act](x)


class ElasticSqueezeExcite(nn.Module):
    """MobileNetV3's SE (section 5.3) at the widest width; a narrower one uses the first
    ``channels`` inputs and the first ``se_channels(channels)`` squeeze units."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = se_channels(channels)
        self.conv_reduce = nn.Conv2d(channels, squeeze, 1)
        self.conv_expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        s = se_channels(c)
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = F.relu(F.conv2d(scale, self.conv_reduce.weight[:s, :c], self.conv_reduce.bias[:s]))
        scale = F.hardsigmoid(F.conv2d(scale, self.conv_expand.weight[:c, :s], self.conv_expand.bias[:c]))
        return x * scale


class BottleneckBranch(nn.Module):
    """An inverted bottleneck with the builder's ``Bottleneck`` names; widths, kernel, SE and
    act are elastic."""

    def __init__(self, in_channels: int, exp_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_pw = ElasticConvBN(in_channels, exp_channels, 1)
        self.conv_dw = ElasticConvBN(exp_channels, exp_channels, MAX_KERNEL, depthwise=True)
        self.se = ElasticSqueezeExcite(exp_channels)
        self.conv_pwl = ElasticConvBN(exp_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, block: BlockSpec) -> torch.Tensor:
        x = self.conv_pw(x, block.exp_channels, 1, 1, block.act)
        x = self.conv_dw(x, x.shape[1], block.kernel, block.stride, block.act)
        if block.se:
            x = self.se(x)
        return self.conv_pwl(x, block.out_channels)

    def expansion_parameters(self) -> Iterator[tuple[torch.Tensor, int]]:
        """Every tensor indexed by the expansion channels, with the dimension they are on."""
        for part in (self.conv_pw, self.conv_dw):
            yield part.conv.weight, 0
            yield from ((t, 0) for t in (part.bn.weight, part.bn.bias, part.bn.running_mean, part.bn.running_var))
        yield self.se.conv_reduce.weight, 1
        yield self.se.conv_expand.weight, 0
        yield self.se.conv_expand.bias, 0
        yield self.conv_pwl.conv.weight, 1

    def output_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm of the linear projection, the branch's output (before the residual)."""
        return self.conv_pwl.bn


class SuperBlock(nn.Module):
    """One block position of a stage: the MBConv branch at its widest shape."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.mbconv = BottleneckBranch(in_channels, in_channels * MAX_EXPANSION, out_channels)

    @staticmethod
    def branch_name(block: BlockSpec, in_channels: int) -> str:
        """The branch running ``block``: an MBConv (a bottleneck with its expansion conv)."""
        if block.op not in BRANCH_TYPES:
            raise ValueError(f"block type {block.op!r} has no supernet branch; expected one of {BRANCH_TYPES}")
        if not block_type(block.op).expansion_conv(block, in_channels):
            raise ValueError(f"block {block.op!r} with expansion {block.exp_channels} of {in_channels} inputs is not "
                             "an MBConv; the supernet holds MBConv blocks only (space mnasnet-mbconv)")
        return "mbconv"

    def forward(self, x: torch.Tensor, block: BlockSpec) -> torch.Tensor:
        out = getattr(self, self.branch_name(block, x.shape[1]))(x, block)
        return out + x if block.skip else out

    def zero_init_outputs(self) -> None:
        """Set the scale of the branch's last BatchNorm to 0, so that as a residual block it
        starts as the identity (BigNAS section 3.2, "modified initialization")."""
        nn.init.zeros_(self.mbconv.output_bn().weight)


class ElasticHead(nn.Module):
    """The efficient last stage (MobileNetV3 section 5.1) whose 1x1 feature conv takes the
    first channels of the widest last stage; builder ``Head`` names."""

    def __init__(self, in_channels: int, space: MnasNetSpace) -> None:
        super().__init__()
        head = space.head
        self.act = head.act
        self.dropout = head.dropout
        self.conv_features = ElasticConvBN(in_channels, head.feature_channels, 1)
        width = head.feature_channels
        self.hidden = None
        if head.hidden_channels is not None:
            self.hidden = nn.Linear(width, head.hidden_channels)
            width = head.hidden_channels
        self.classifier = nn.Linear(width, space.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_features(x, self.conv_features.conv.out_channels, act=self.act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if self.hidden is not None:
            x = _ACTS[self.act](self.hidden(x))
        return self.classifier(F.dropout(x, self.dropout, self.training))


class Supernet(nn.Module):
    """Every architecture of a MnasNet space in one module; ``forward(x, layout)`` runs one
    sub-network (see the module docstring). ``stages.<s>.<i>`` is block ``i`` of stage ``s``."""

    def __init__(self, space: MnasNetSpace) -> None:
        super().__init__()
        if space.name not in SUPERNET_SPACES:
            raise ValueError(no_supernet_message(space.name, "space"))
        self.space = space
        stem = space.stem
        self.stem = ConvBNAct(space.in_channels, stem.out_channels, stem.kernel, stem.stride, act=stem.act)
        stages, in_channels = [], stem.out_channels
        for s, (_, repeats, _) in enumerate(space.stages):
            out = space.stage_out_channels(s, max(_choices(space, "filters")))
            depth = repeats + max(_choices(space, "layers"))
            stages.append(nn.ModuleList(SuperBlock(in_channels if i == 0 else out, out) for i in range(depth)))
            in_channels = out
        self.stages = nn.ModuleList(stages)
        self.head = ElasticHead(in_channels, space)
        init_weights(self)
        self.zero_init_residuals()

    def zero_init_residuals(self) -> None:
        """BigNAS's initialization (Yu et al. 2020, section 3.2): the output of every residual
        block (all but the first of each stage, residual in every sub-network of the MBConv
        space) starts at zero, so a deep sub-network starts as its shallow one. Without it the
        largest sub-network stays at chance for its first epochs, which starves the sandwich
        rule's teacher (``results/search/README.md``)."""
        for stage in self.stages:
            for block in list(stage)[1:]:
                block.zero_init_outputs()

    def layout(self, indices: tuple[int, ...]) -> Layout:
        """The sub-network of the space's decision ``indices`` as blocks per stage."""
        spec = self.space.decode(indices)
        layout, start = [], 0
        for s, (_, repeats, _) in enumerate(self.space.stages):
            depth = max(1, repeats + _choices(self.space, "layers")[indices[s * DECISIONS_PER_STAGE + _LAYERS]])
            layout.append(spec.blocks[start:start + depth])
            start += depth
        return tuple(layout)

    def layout_of(self, spec: ArchSpec) -> Layout:
        """The layout of ``spec``; ``ValueError`` when it is not in the space (or of another shape)."""
        return self.layout(self.space.encode(spec))

    def widened_layout(self, spec: ArchSpec, template: ArchSpec) -> Layout:
        """The layout of ``spec``, a copy of the space's ``template`` with other widths (e.g.
        :func:`search_spaces.rewrite.widened`): its blocks at the template's positions, every
        width within what the supernet holds there (slicing needs no width of the space's
        choices). ``ValueError`` naming the first block that does not fit."""
        problem = same_layout(template, spec)
        if problem is not None:
            raise ValueError(f"spec is not a re-width of its template: {problem}")
        layout, start = [], 0
        for blocks in self.layout_of(template):
            layout.append(spec.blocks[start:start + len(blocks)])
            start += len(blocks)
        for index, ((out, exp), block) in enumerate(zip(self.width_ceilings(template), spec.blocks)):
            if block.out_channels > out or (block.exp_channels or 0) > exp:
                raise ValueError(f"block {index} (exp {block.exp_channels}, out {block.out_channels}) is wider than "
                                 f"the supernet holds there (exp {exp}, out {out})")
        return tuple(layout)

    def width_ceilings(self, template: ArchSpec) -> tuple[tuple[int, int], ...]:
        """For each block of ``template`` (a spec of the space), the widest ``(out, exp)`` the
        supernet holds at its position."""
        ceilings = []
        for stage, blocks in zip(self.stages, self.layout_of(template)):
            ceilings += [(m.mbconv.conv_pwl.conv.out_channels, m.mbconv.conv_pw.conv.out_channels)
                         for m, _ in zip(stage, blocks)]
        return tuple(ceilings)

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        x = self.stem(x)
        for stage, blocks in zip(self.stages, layout):
            for module, block in zip(stage, blocks):
                x = module(x, block)
        return self.head(x)

    def set_bn_momentum(self, momentum: float) -> None:
        """The running-statistics momentum of every elastic BatchNorm (stem's included)."""
        for module in self.modules():
            if isinstance(module, ElasticConvBN):
                module.bn_momentum = momentum
        self.stem.bn.momentum = momentum

    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Reorder each MBConv's expansion channels by importance, the L1 norm of the linear
        projection's weights on each (once-for-all section 3.2, "elastic width"), so that
        first-k slicing keeps the most important ones; momentum buffers follow their weights."""
        for stage in self.stages:
            for block in stage:
                branch = block.mbconv
                importance = branch.conv_pwl.conv.weight.abs().sum(dim=(0, 2, 3))
                order = torch.argsort(importance, descending=True, stable=True)
                for tensor, dim in branch.expansion_parameters():
                    tensor.copy_(tensor.index_select(dim, order))
                    state = optimizer.state.get(tensor, {}) if optimizer is not None else {}
                    if state.get("momentum_buffer") is not None:
                        state["momentum_buffer"].copy_(state["momentum_buffer"].index_select(dim, order))


def extreme_indices(space: MnasNetSpace, largest: bool) -> tuple[int, ...]:
    """The largest (MBConv6, 5x5, SE, 1.25x filters, +1 layer, h-swish) or smallest (MBConv3,
    3x3, no SE, 0.75x, -1 layer, ReLU) sub-network: the sandwich rule's ends (BigNAS 3.1);
    each decision's choices run from the smallest to the largest."""
    stage = tuple(len(c) - 1 if largest else 0 for c in space.choices)
    return space.canonicalize(stage * len(space.stages))


def no_supernet_message(space_name: str, what: str = "--space") -> str:
    """One line saying that ``space_name`` has no supernet and which space to use instead."""
    hint = f"; its MBConv part is {space_name}-mbconv" if f"{space_name}-mbconv" in SUPERNET_SPACES else ""
    return f"{what} {space_name!r} has no supernet{hint}; expected one of {list(SUPERNET_SPACES)}"


def _choices(space: MnasNetSpace, name: str) -> tuple:
    return space.choices[DECISION_NAMES.index(name)]


_LAYERS = DECISION_NAMES.index("layers")


def make_supernet(space_name: str, *, resolution: int, num_classes: int, in_channels: int) -> Supernet:
    """The supernet of space ``space_name`` at an input shape (weights from torch's global RNG)."""
    if space_name not in SUPERNET_SPACES:
        raise ValueError(no_supernet_message(space_name))
    space = make_space(space_name, resolution=resolution, num_classes=num_classes, in_channels=in_channels)
    return Supernet(space)


def _slice_to(source: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Leading channels in every dimension but the kernel's, which is centre-cropped."""
    if source.ndim == 4 and source.shape[-1] != shape[-1]:
        source = centre_crop(source, shape[-2], shape[-1])
    return source[tuple(slice(0, n) for n in shape)] if source.ndim else source


def _source_names(spec: ArchSpec, layout: Layout) -> dict[str, str]:
    """Stand-alone module prefix -> supernet prefix, block by block."""
    names = {"stem.": "stem.", "head.": "head."}
    flat = 0
    for s, blocks in enumerate(layout):
        for i, block in enumerate(blocks):
            branch = SuperBlock.branch_name(block, spec.in_channels_of(flat))
            names[f"blocks.{flat}."] = f"stages.{s}.{i}.{branch}."
            flat += 1
    return names


@torch.no_grad()
def extract_subnet(supernet: Supernet, spec: ArchSpec, layout: Layout | None = None) -> nn.Module:
    """A stand-alone :func:`search_spaces.builder.build_model` of ``spec`` holding the
    supernet's slices (weights and BatchNorm statistics): it computes what
    ``supernet(x, layout)`` computes (``layout``: ``supernet.layout_of(spec)`` unless given,
    e.g. a :meth:`Supernet.widened_layout`)."""
    model = build_model(spec)
    source = supernet.state_dict()
    prefixes = _source_names(spec, supernet.layout_of(spec) if layout is None else layout)
    state = {}
    for name, target in model.state_dict().items():
        prefix = next(p for p in prefixes if name.startswith(p))
        state[name] = _slice_to(source[prefixes[prefix] + name[len(prefix):]], target.shape).clone()
    model.load_state_dict(state)
    return model
