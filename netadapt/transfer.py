"""NetAdapt step 3: carry a model's weights to a narrower spec (MobileNetV3 section 4.2).

NetAdapt (Yang et al., 2018, section 3.2) initialises each proposal from the previous
model by keeping the filters with the largest L2 norm. A channel's norm is the norm of the
filter producing it; a residual group's channels are produced by several convs (the stem
or the group's first block, and every residual block's projection) whose outputs are
summed, so their norms are summed and one index set is kept for all of them. Every tensor
that reads a kept channel set is sliced consistently: conv weights, batch norm (affine and
running statistics), the SE reduce/expand convs (the squeeze width is recomputed from the
new width with ``se_channels``; when it shrinks the hidden units with the largest reduce-
filter norms stay), the next layer's input channels and the head.

A depthwise layer without expansion conv (exp == in) runs on its block's input, so its
channels are the input's kept channels. A width change that *removes* an expansion conv
raises ``ValueError``: the 1x1 mixing it did has no counterpart in the narrower network,
so there is nothing to keep (``netadapt.proposals`` never proposes it). One that *adds* an
expansion conv (the input of an exp == in block shrinks while its exp stays) is initialised
as a channel selection: the new conv copies each kept depthwise channel from the input
channel it came from (zero where that input channel was dropped), with an identity batch
norm; only its activation differs from the old network, so the transfer is approximate
there (proposals never create this case either, keeping exp == in blocks tied).

Result: with the dropped channels' producing filters and batch norms zeroed in the old
model (each dropped channel exactly 0 into the next layer), the old and the new model
compute the same function in eval mode (tests/netadapt/test_transfer.py).

Which weighted parts a block has, and which channel sets each reads and writes, is its block
type's ``parts`` (:class:`search_spaces.blocks.base.Part`): a newly registered block type is
carried without a change here (tests/test_extension_points.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from search_spaces.blocks.base import Part
from search_spaces.blocks.registry import block_type
from search_spaces.builder import BN_EPS, build_model
from search_spaces.rewrite import STEM, expansion_convs, residual_groups, same_layout, se_squeeze_widths
from search_spaces.spec import ArchSpec

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class ChannelSelection:
    """Kept channels (indices into the old model, ascending) of every width of a spec:
    the stem's output, each block's output and expansion (depthwise) channels, each SE's
    hidden units (``None`` without SE) and the head's feature conv."""

    stem: Tensor
    outputs: tuple[Tensor, ...]
    expansions: tuple[Tensor | None, ...]
    se_hidden: tuple[Tensor | None, ...]
    features: Tensor

    def inputs_of(self, index: int) -> Tensor:
        """Kept input channels of block ``index``."""
        return self.stem if index == 0 else self.outputs[index - 1]

    def channel_sets(self, index: int) -> dict[str, Tensor | None]:
        """Block ``index``'s kept channels by the names a :class:`Part` gives them."""
        return {"in": self.inputs_of(index), "exp": self.expansions[index], "out": self.outputs[index]}


def _filter_norms(weight: Tensor) -> Tensor:
    """L2 norm of each output filter (row) of a conv or linear weight."""
    return weight.detach().flatten(1).float().norm(dim=1)


def _top(norms: Tensor, keep: int) -> Tensor:
    """Indices of the ``keep`` largest ``norms`` in ascending index order (ties: lower index)."""
    order = torch.argsort(norms, descending=True, stable=True)[:keep]
    return torch.sort(order).values


def _parts(spec: ArchSpec, index: int) -> tuple[Part, ...]:
    """Block ``index``'s weighted parts, as its block type declares them."""
    block = spec.blocks[index]
    return block_type(block.op).parts_of(block, expansion_convs(spec)[index])


def _writer(spec: ArchSpec, index: int, rows: str) -> Part:
    """The last conv part of block ``index`` writing the channel set ``rows``."""
    return next(p for p in reversed(_parts(spec, index)) if p.kind == "conv" and p.rows == rows)


def _producer(spec: ArchSpec, index: int) -> str:
    """State-dict key of the conv weight producing the output of block ``index`` (or stem)."""
    if index == STEM:
        return "stem.conv.weight"
    return f"blocks.{index}.{_writer(spec, index, 'out').name}.conv.weight"


def _check_shrink(old: ArchSpec, new: ArchSpec) -> None:
    reason = same_layout(old, new)
    if reason is not None:
        raise ValueError(f"new spec is not a width shrink of the old one: {reason}")
    if new.stem.out_channels > old.stem.out_channels:
        raise ValueError(f"stem.out_channels {old.stem.out_channels} -> {new.stem.out_channels} grows; expected <=")
    if new.head.feature_channels > old.head.feature_channels:
        raise ValueError(f"head.feature_channels {old.head.feature_channels} -> {new.head.feature_channels} grows; expected <=")
    had_pw, has_pw = expansion_convs(old), expansion_convs(new)
    for index, (a, b) in enumerate(zip(old.blocks, new.blocks)):
        for name in ("out_channels", "exp_channels"):
            if (getattr(b, name) or 0) > (getattr(a, name) or 0):
                raise ValueError(f"block {index}: {name} {getattr(a, name)} -> {getattr(b, name)} grows; expected <=")
        if had_pw[index] and not has_pw[index]:
            raise ValueError(f"block {index}: exp {b.exp_channels} == in {new.in_channels_of(index)} removes its "
                             "expansion conv; weight transfer cannot carry it (keep exp != in)")


def _group_selection(old: ArchSpec, state: dict[str, Tensor], new: ArchSpec) -> tuple[Tensor, list[Tensor]]:
    """Kept stem and block output channels: one index set per residual group, by summed norms."""
    groups = list(residual_groups(old))
    if groups[0][0] != STEM:
        groups.insert(0, (STEM,))
    chosen: dict[int, Tensor] = {}
    for group in groups:
        norms = sum(_filter_norms(state[_producer(old, i)]) for i in group)
        last = group[-1]
        keep = new.stem.out_channels if last == STEM else new.blocks[last].out_channels
        chosen |= {i: _top(norms, keep) for i in group}
    return chosen[STEM], [chosen[i] for i in range(len(old.blocks))]


def _expansion_selection(old: ArchSpec, state: dict[str, Tensor], new: ArchSpec, index: int,
                         inputs: Tensor) -> Tensor | None:
    """Kept hidden (expanded) channels of block ``index``, by the norms of the old block's first
    part writing them (its expansion conv; the depthwise conv when an expansion conv appears),
    or the block's kept inputs when a depthwise conv runs on its input in both."""
    block = new.blocks[index]
    if not block_type(block.op).expands:
        return None
    writer = next(p for p in _parts(old, index) if p.kind == "conv" and p.rows == "exp")
    if writer.cols is None and not expansion_convs(new)[index]:
        return inputs
    return _top(_filter_norms(state[f"blocks.{index}.{writer.name}.conv.weight"]), block.exp_channels)


def _se_selection(state: dict[str, Tensor], prefix: str, channels: Tensor, squeeze: int) -> Tensor:
    """Kept hidden units of the SE at ``prefix``: all, or the largest reduce filters over the kept channels."""
    reduce = state[f"{prefix}.conv_reduce.weight"]
    if squeeze == reduce.shape[0]:
        return torch.arange(squeeze)
    return _top(_filter_norms(reduce[:, channels]), squeeze)


def select_channels(old_spec: ArchSpec, state: dict[str, Tensor], new_spec: ArchSpec) -> ChannelSelection:
    """The channels :func:`shrink_state_dict` keeps (NetAdapt's largest-L2-norm criterion).

    Raises:
        ValueError: ``new_spec`` is not ``old_spec`` with equal or smaller widths (the message
            names the block), or it removes an expansion conv.
    """
    _check_shrink(old_spec, new_spec)
    stem, outputs = _group_selection(old_spec, state, new_spec)
    expansions, se_hidden = [], []
    squeezes = se_squeeze_widths(new_spec)
    for index in range(len(new_spec.blocks)):
        inputs = stem if index == 0 else outputs[index - 1]
        expansions.append(_expansion_selection(old_spec, state, new_spec, index, inputs))
        kept = {"in": inputs, "exp": expansions[-1], "out": outputs[index]}
        se = next((p for p in _parts(new_spec, index) if p.kind == "se"), None)
        se_hidden.append(None if se is None else
                         _se_selection(state, f"blocks.{index}.{se.name}", kept[se.rows], squeezes[index]))
    features = _top(_filter_norms(state["head.conv_features.conv.weight"]), new_spec.head.feature_channels)
    return ChannelSelection(stem, tuple(outputs), tuple(expansions), tuple(se_hidden), features)


def _slice(tensor: Tensor, rows: Tensor | None, cols: Tensor | None = None) -> Tensor:
    if rows is not None:
        tensor = tensor.index_select(0, rows.to(tensor.device))
    if cols is not None:
        tensor = tensor.index_select(1, cols.to(tensor.device))
    return tensor.detach().clone()


def _conv_bn(out: dict[str, Tensor], state: dict[str, Tensor], prefix: str, rows: Tensor, cols: Tensor | None) -> None:
    """Slice a ConvBNAct: conv filters ``rows`` over input channels ``cols``, BN ``rows``."""
    out[f"{prefix}.conv.weight"] = _slice(state[f"{prefix}.conv.weight"], rows, cols)
    for name in _BN_TENSORS:
        out[f"{prefix}.bn.{name}"] = _slice(state[f"{prefix}.bn.{name}"], rows)
    if f"{prefix}.bn.num_batches_tracked" in state:
        out[f"{prefix}.bn.num_batches_tracked"] = state[f"{prefix}.bn.num_batches_tracked"].clone()


def _se(out: dict[str, Tensor], state: dict[str, Tensor], prefix: str, channels: Tensor, hidden: Tensor) -> None:
    out[f"{prefix}.conv_reduce.weight"] = _slice(state[f"{prefix}.conv_reduce.weight"], hidden, channels)
    out[f"{prefix}.conv_reduce.bias"] = _slice(state[f"{prefix}.conv_reduce.bias"], hidden)
    out[f"{prefix}.conv_expand.weight"] = _slice(state[f"{prefix}.conv_expand.weight"], channels, hidden)
    out[f"{prefix}.conv_expand.bias"] = _slice(state[f"{prefix}.conv_expand.bias"], channels)


def _selection_conv(out: dict[str, Tensor], like: Tensor, prefix: str, inputs: Tensor, picks: Tensor) -> None:
    """A new 1x1 expansion conv that copies input channel ``picks[j]`` to output ``j`` (zero
    where that channel is not among ``inputs``), with an identity batch norm (the builder's eps)."""
    weight = torch.zeros(len(picks), len(inputs), 1, 1, dtype=like.dtype, device=like.device)
    position = {int(c): p for p, c in enumerate(inputs)}
    for j, channel in enumerate(picks.tolist()):
        if channel in position:
            weight[j, position[channel]] = 1.0
    ones = torch.ones(len(picks), dtype=like.dtype, device=like.device)
    out[f"{prefix}.conv.weight"] = weight
    out |= {f"{prefix}.bn.weight": ones.clone(), f"{prefix}.bn.bias": torch.zeros_like(ones),
            f"{prefix}.bn.running_mean": torch.zeros_like(ones), f"{prefix}.bn.running_var": ones - BN_EPS,
            f"{prefix}.bn.num_batches_tracked": torch.tensor(0, dtype=torch.long)}


def _block(out: dict[str, Tensor], state: dict[str, Tensor], new: ArchSpec, index: int, sel: ChannelSelection) -> None:
    """Slice every part of block ``index`` as its block type declares it (:class:`Part`)."""
    kept = sel.channel_sets(index)
    for part in _parts(new, index):
        prefix, rows = f"blocks.{index}.{part.name}", kept[part.rows]
        cols = None if part.cols is None else kept[part.cols]
        if part.kind == "se":
            _se(out, state, prefix, rows, sel.se_hidden[index])
        elif f"{prefix}.conv.weight" in state:
            _conv_bn(out, state, prefix, rows, cols)
        else:  # an expansion conv the old block did not have
            _selection_conv(out, state["stem.conv.weight"], prefix, cols, rows)


def _head(out: dict[str, Tensor], state: dict[str, Tensor], new: ArchSpec, sel: ChannelSelection) -> None:
    _conv_bn(out, state, "head.conv_features", sel.features, sel.outputs[-1])
    first = "head.hidden" if new.head.hidden_channels is not None else "head.classifier"
    out[f"{first}.weight"] = _slice(state[f"{first}.weight"], None, sel.features)
    out[f"{first}.bias"] = state[f"{first}.bias"].detach().clone()
    if first == "head.hidden":
        out |= {f"head.classifier.{n}": state[f"head.classifier.{n}"].detach().clone() for n in ("weight", "bias")}


def shrink_state_dict(old_spec: ArchSpec, state: dict[str, Tensor], new_spec: ArchSpec) -> dict[str, Tensor]:
    """Weights of ``old_spec``'s model carried to ``new_spec`` (NetAdapt step 3).

    Args:
        state: ``build_model(old_spec).state_dict()`` (any device and dtype).
        new_spec: ``old_spec`` with equal or smaller widths, e.g. a ``ShrinkProposal.spec``.

    Returns:
        A state dict that ``build_model(new_spec).load_state_dict`` accepts (strict).

    Raises:
        ValueError: ``new_spec`` changes more than widths, grows one, or removes an
            expansion conv (the message names the block); ``state`` lacks a tensor or has
            the wrong shape for ``old_spec``.
    """
    _check_state(old_spec, state)
    sel = select_channels(old_spec, state, new_spec)
    out: dict[str, Tensor] = {}
    _conv_bn(out, state, "stem", sel.stem, None)
    for index in range(len(new_spec.blocks)):
        _block(out, state, new_spec, index, sel)
    _head(out, state, new_spec, sel)
    return out


def _check_state(spec: ArchSpec, state: dict[str, Tensor]) -> None:
    """Keys and shapes of ``state`` equal those of ``build_model(spec)`` (built on the meta
    device: no weight initialisation, so the global torch RNG is left untouched)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
    for key, shape in expected.items():
        if key not in state:
            raise ValueError(f"state dict lacks {key!r}; expected the state dict of build_model(old_spec)")
        if tuple(state[key].shape) != shape:
            raise ValueError(f"state dict {key!r} has shape {tuple(state[key].shape)}; expected {shape} for old_spec")
