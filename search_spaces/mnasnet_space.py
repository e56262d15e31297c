"""The MnasNet factorized hierarchical search space with MobileNetV3's extensions.

MnasNet (Tan et al., 2019, section 4.1) splits the network into 7 stages on MobileNetV2's
skeleton; each stage repeats one layer with its own choices. Per stage, in this fixed order:

  op       {conv, dsconv, mbconv3, mbconv6}   regular conv, depthwise-separable, MBConv e3/e6
  kernel   {3, 5}
  se       {0, 0.25}                          squeeze-and-excite (MobileNetV3 SE, section 5.3)
  skip     {none, residual}                   identity residual where shape-valid
  filters  {0.75, 1.0, 1.25} x MobileNetV2's  rounded to multiples of 8
  layers   {-1, 0, +1} + MobileNetV2's        at least 1
  act      {relu, hswish}                     MobileNetV3's per-block nonlinearity (section 5.2)

The stem (16 filters, h-swish) and the efficient last stage are fixed (MobileNetV3 5.1).
MnasNet's third skip option, pooling, is left out: no published MnasNet or MobileNetV3 model
uses it, and a pooled shortcut has no counterpart in torchvision, timm or the paper's table.

Inactive or redundant decisions are canonicalized so that one architecture has exactly one
encoding: ``skip`` is 0 where no layer of the stage can take a residual, and where several
choices give the same blocks (e.g. 0.75 and 1.0 of 16 filters both round to 16, or layers
-1 and 0 of a 1-layer stage) the smallest index is used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Iterable, Iterator

import numpy as np

from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec, make_divisible

OP_CHOICES = ("conv", "dsconv", "mbconv3", "mbconv6")
KERNEL_CHOICES = (3, 5)
SE_CHOICES = (False, True)
SKIP_CHOICES = ("none", "residual")
FILTER_CHOICES = (0.75, 1.0, 1.25)
LAYER_CHOICES = (-1, 0, 1)
ACT_CHOICES = ("relu", "hswish")
DECISION_NAMES = ("op", "kernel", "se", "skip", "filters", "layers", "act")
DECISIONS_PER_STAGE = len(DECISION_NAMES)
"""Decisions of one stage: a stage's slice of the index vector is this long."""
_CHOICES = (OP_CHOICES, KERNEL_CHOICES, SE_CHOICES, SKIP_CHOICES, FILTER_CHOICES, LAYER_CHOICES, ACT_CHOICES)
_EXPANSION = {"dsconv": 1, "mbconv3": 3, "mbconv6": 6}

# MobileNetV2's (out_channels, repeats, stride) per stage (Sandler et al. 2018, Table 2).
MOBILENETV2_STAGES = ((16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))
# MobileNetV3-Small's bottleneck stages after its stem, as (out_channels, repeats, stride)
# (Howard et al. 2019, Table 2: 16 x1 s2, 24 x2 s2, 40 x3 s2, 48 x2 s1, 96 x3 s2; 11 blocks).
MOBILENETV3_SMALL_STAGES = ((16, 1, 2), (24, 2, 2), (40, 3, 2), (48, 2, 1), (96, 3, 2))


@dataclass(frozen=True)
class Decision:
    """One categorical decision of the space: ``stage`` and ``name`` with its ``choices``."""

    stage: int
    name: str
    choices: tuple


@dataclass(frozen=True)
class StageChoice:
    """The seven choices of one stage, as values (not indices)."""

    op: str
    kernel: int
    se: bool
    skip: str
    filters: float
    layers: int
    act: str


@dataclass(frozen=True)
class MnasNetSpace:
    """The MnasNet x MobileNetV3 space at a given resolution, class count and input channels."""

    resolution: int = 224
    num_classes: int = 1000
    in_channels: int = 3
    stages: tuple[tuple[int, int, int], ...] = MOBILENETV2_STAGES
    stem: StemSpec = field(default_factory=lambda: StemSpec(16, 3, 2, "hswish"))
    head: HeadSpec = field(default_factory=lambda: HeadSpec(960, 1280, "hswish", 0.2))

    name = "mnasnet"
    choices: ClassVar[tuple[tuple, ...]] = _CHOICES
    """The values of each decision of a stage, in :data:`DECISION_NAMES` order."""

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """All decisions in their fixed order (stage-major, then :data:`DECISION_NAMES`)."""
        return tuple(Decision(s, n, c) for s in range(len(self.stages)) for n, c in zip(DECISION_NAMES, self.choices))

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(len(d.choices) for d in self.decisions)

    def stage_out_channels(self, stage: int, filters: float) -> int:
        return make_divisible(self.stages[stage][0] * filters, 8)

    def stage_blocks(self, stage: int, choice: StageChoice, in_channels: int) -> tuple[BlockSpec, ...]:
        """The blocks stage ``stage`` decodes to when its input has ``in_channels``."""
        out, repeats, stride = self.stages[stage]
        out = make_divisible(out * choice.filters, 8)
        blocks = []
        for i in range(max(1, repeats + choice.layers)):
            block_stride = stride if i == 0 else 1
            exp = None if choice.op == "conv" else in_channels * _EXPANSION[choice.op]
            skip = choice.skip == "residual" and block_stride == 1 and in_channels == out
            blocks.append(BlockSpec("bneck" if exp else "conv", choice.kernel, block_stride, exp, out, choice.se, choice.act, skip))
            in_channels = out
        return tuple(blocks)

    def decode(self, indices: tuple[int, ...] | list[int]) -> ArchSpec:
        """Indices (one per decision) -> spec; raises ``ValueError`` on a bad index vector."""
        indices = self._check_indices(indices)
        blocks: list[BlockSpec] = []
        in_channels = self.stem.out_channels
        for stage in range(len(self.stages)):
            choice = self._stage_choice(indices[stage * DECISIONS_PER_STAGE:(stage + 1) * DECISIONS_PER_STAGE])
            stage_blocks = self.stage_blocks(stage, choice, in_channels)
            blocks += stage_blocks
            in_channels = stage_blocks[-1].out_channels
        return ArchSpec(blocks=tuple(blocks), stem=self.stem, head=self.head, resolution=self.resolution,
                        in_channels=self.in_channels, num_classes=self.num_classes)

    def encode(self, spec: ArchSpec) -> tuple[int, ...]:
        """Spec -> canonical indices; raises ``ValueError`` if the spec is not in this space."""
        if (spec.stem, spec.head, spec.resolution, spec.in_channels, spec.num_classes) != (
                self.stem, self.head, self.resolution, self.in_channels, self.num_classes):
            raise ValueError("spec is not in this space: its stem, head, resolution, input channels or classes differ")
        found = self._parse_stages(spec.blocks, 0, 0, self.stem.out_channels)
        if found is None:
            raise ValueError(f"spec is not in this space: its blocks do not match the {len(self.stages)} MnasNet stages")
        return found

    def deepened(self, spec: ArchSpec, levels: int, stages: Iterable[int] | None = None) -> ArchSpec:
        """``spec`` (of this space) with each of ``stages`` (default: every stage) ``levels``
        blocks deeper where its ``layers`` choices allow, every other decision kept: depth
        scaling, as EfficientNet's compound scaling (section 3.3) grows depth beside width."""
        indices = list(self.encode(spec))
        position = DECISION_NAMES.index("layers")
        layers = self.choices[position]
        chosen = set(range(len(self.stages)) if stages is None else stages)
        for stage, (_, repeats, _) in enumerate(self.stages):
            if stage not in chosen:
                continue
            at = stage * DECISIONS_PER_STAGE + position
            wanted = max(1, repeats + layers[indices[at]]) + levels
            deeper = [i for i, c in enumerate(layers) if max(1, repeats + c) >= wanted]
            indices[at] = deeper[0] if deeper else max(range(len(layers)), key=lambda i: layers[i])
        return self.decode(indices)

    def canonicalize(self, indices: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """The one canonical encoding of the architecture ``indices`` decodes to."""
        return self.encode(self.decode(indices))

    def sample_indices(self, rng: np.random.Generator) -> tuple[int, ...]:
        """Uniform random choice per decision, canonicalized."""
        return self.canonicalize(tuple(int(rng.integers(n)) for n in self.cardinalities))

    def sample(self, rng: np.random.Generator) -> ArchSpec:
        return self.decode(self.sample_indices(rng))

    def mutate_indices(self, indices: tuple[int, ...], rng: np.random.Generator, max_tries: int = 100) -> tuple[int, ...]:
        """Change one random decision to another value so that the architecture changes."""
        indices = self.canonicalize(indices)
        free = [p for p, n in enumerate(self.cardinalities) if n > 1]
        for _ in range(max_tries):
            position = free[int(rng.integers(len(free)))]
            n = self.cardinalities[position]
            new = list(indices)
            new[position] = (indices[position] + 1 + int(rng.integers(n - 1))) % n
            candidate = self.canonicalize(new)
            if candidate != indices:
                return candidate
        raise RuntimeError("no mutation changed the architecture")  # unreachable for this space

    def mutate(self, spec: ArchSpec, rng: np.random.Generator) -> ArchSpec:
        return self.decode(self.mutate_indices(self.encode(spec), rng))

    def size(self) -> int:
        """Exact number of distinct architectures (dynamic programming over stage inputs)."""
        counts = {self.stem.out_channels: 1}
        for stage in range(len(self.stages)):
            new_counts: dict[int, int] = {}
            for in_channels, count in counts.items():
                for out, variants in self._distinct_stage_variants(stage, in_channels).items():
                    new_counts[out] = new_counts.get(out, 0) + count * variants
            counts = new_counts
        return sum(counts.values())

    def block_contexts(self) -> Iterator[tuple[BlockSpec, int, int]]:
        """Every distinct (block, in_channels, input side) any spec of the space contains."""
        seen: set[tuple[BlockSpec, int, int]] = set()
        inputs, side = {self.stem.out_channels}, (self.resolution + self.stem.stride - 1) // self.stem.stride
        for stage in range(len(self.stages)):
            outs, after_first = set(), _down(side, self.stages[stage][2])
            for in_channels in sorted(inputs):
                for choice in self._all_stage_choices():
                    for i, block in enumerate(self.stage_blocks(stage, choice, in_channels)):
                        context = (block, in_channels, side) if i == 0 else (block, block.out_channels, after_first)
                        if context not in seen:
                            seen.add(context)
                            yield context
                    outs.add(self.stage_out_channels(stage, choice.filters))
            inputs, side = outs, after_first

    # -- helpers ------------------------------------------------------------------
    def _check_indices(self, indices: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        cards = self.cardinalities
        if len(indices) != len(cards):
            raise ValueError(f"expected {len(cards)} decision indices, got {len(indices)}")
        for position, (value, n) in enumerate(zip(indices, cards)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n:
                d = self.decisions[position]
                raise ValueError(f"decision {position} (stage {d.stage} {d.name}) = {value!r}; expected an index in [0, {n})")
        return tuple(int(v) for v in indices)

    def _stage_choice(self, stage_indices: tuple[int, ...]) -> StageChoice:
        return StageChoice(*(choices[i] for choices, i in zip(self.choices, stage_indices)))

    def _all_stage_choices(self) -> Iterator[StageChoice]:
        for combo in np.ndindex(*(len(c) for c in self.choices)):
            yield self._stage_choice(tuple(int(i) for i in combo))

    def _distinct_stage_variants(self, stage: int, in_channels: int) -> dict[int, int]:
        variants: dict[int, set] = {}
        for choice in self._all_stage_choices():
            blocks = self.stage_blocks(stage, choice, in_channels)
            variants.setdefault(blocks[-1].out_channels, set()).add(blocks)
        return {out: len(v) for out, v in variants.items()}

    def _parse_stages(self, blocks: tuple[BlockSpec, ...], stage: int, start: int, in_channels: int) -> tuple[int, ...] | None:
        """Backtracking split of ``blocks`` into stages; smallest indices win ties."""
        if stage == len(self.stages):
            return () if start == len(blocks) else None
        if start >= len(blocks):
            return None
        for combo in self._candidate_combos(stage, blocks[start], in_channels):
            stage_blocks = self.stage_blocks(stage, self._stage_choice(combo), in_channels)
            if blocks[start:start + len(stage_blocks)] != stage_blocks:
                continue
            rest = self._parse_stages(blocks, stage + 1, start + len(stage_blocks), stage_blocks[-1].out_channels)
            if rest is not None:
                return combo + rest
        return None

    def _candidate_combos(self, stage: int, first: BlockSpec, in_channels: int) -> list[tuple[int, ...]]:
        """Index tuples that could produce a stage starting with ``first``, in ascending order."""
        op_choices, kernels, ses, skips, filter_choices, layer_choices, acts = self.choices
        if first.op == "conv":
            names = ["conv"]
        else:
            names = [op for op, ratio in _EXPANSION.items() if first.exp_channels == in_channels * ratio]
        ops = [op_choices.index(op) for op in names if op in op_choices]
        filters = [i for i, f in enumerate(filter_choices) if self.stage_out_channels(stage, f) == first.out_channels]
        if first.kernel not in kernels or first.se not in ses or first.act not in acts:
            return []
        fixed = (kernels.index(first.kernel), ses.index(first.se))
        act = acts.index(first.act)
        return [(op, *fixed, skip, f, layers, act)
                for op in ops for skip in range(len(skips)) for f in filters for layers in range(len(layer_choices))]

def _down(side: int, stride: int) -> int:
    return (side + stride - 1) // stride


@dataclass(frozen=True)
class MnasNetSmallHeadSpace(MnasNetSpace):
    """The same space with MobileNetV3-Small's efficient last stage (576 features, 1024 hidden;
    MobileNetV3 section 5.1, Table 2) instead of Large's (960, 1280): at small inputs the head's
    weights dominate latency, so targets near MobileNetV3-Small's latency need the small head."""

    head: HeadSpec = field(default_factory=lambda: HeadSpec(576, 1024, "hswish", 0.2))

    name = "mnasnet-small"


_MBCONV_CHOICES = (("mbconv3", "mbconv6"), KERNEL_CHOICES, SE_CHOICES, ("residual",), FILTER_CHOICES, LAYER_CHOICES,
                   ACT_CHOICES)


@dataclass(frozen=True)
class MnasNetMBConvSpace(MnasNetSpace):
    """The MnasNet space's MBConv part: every stage an inverted bottleneck (expansion 3 or 6)
    with its identity residual wherever the shape allows; kernel, SE, filters, layers and
    nonlinearity as in the full space. It is once-for-all's space (elastic kernel, expansion,
    depth and width; Cai et al. 2020, section 3.2) with MobileNetV3's SE and h-swish choices,
    the part of the space a weight-sharing supernet trains (:mod:`nas.supernet`)."""

    name = "mnasnet-mbconv"
    choices: ClassVar[tuple[tuple, ...]] = _MBCONV_CHOICES


@dataclass(frozen=True)
class MnasNetSmallMBConvSpace(MnasNetSmallHeadSpace):
    """:class:`MnasNetMBConvSpace` with MobileNetV3-Small's efficient last stage."""

    name = "mnasnet-small-mbconv"
    choices: ClassVar[tuple[tuple, ...]] = _MBCONV_CHOICES


@dataclass(frozen=True)
class MnasNetV3SmallSpace(MnasNetSmallHeadSpace):
    """The MnasNet decisions on MobileNetV3-Small's five stages and last stage (Table 2) instead
    of MobileNetV2's seven: 7 to 16 blocks (Small has 11) against 12 to 24. At small inputs a
    model's latency on a CPU runtime is mostly its operator count; at 32x32 on a 2-core AMD EPYC
    (ONNX Runtime, 1 thread) random models of the MobileNetV2 skeleton ran a median 3.85x
    MobileNetV3-Small (1.70x to 6.13x), those of this one 0.86x (0.60x to 1.23x), so a search
    aimed at Small's latency finds candidates at its budget (``results/reference/space_skeleton.json``)."""

    stages: tuple[tuple[int, int, int], ...] = MOBILENETV3_SMALL_STAGES

    name = "mnasnet-v3small"


@dataclass(frozen=True)
class MnasNetV3SmallMBConvSpace(MnasNetV3SmallSpace):
    """:class:`MnasNetV3SmallSpace`'s MBConv part (the choices of :class:`MnasNetMBConvSpace`),
    which a weight-sharing supernet trains."""

    name = "mnasnet-v3small-mbconv"
    choices: ClassVar[tuple[tuple, ...]] = _MBCONV_CHOICES
