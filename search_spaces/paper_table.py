"""Render a spec as the paper's table (MobileNetV3 Tables 1-2): input, operator, exp size,
#out, SE, NL, s. One-way export: residuals are implicit, as in the paper."""
from __future__ import annotations

from search_spaces.blocks.registry import block_type
from search_spaces.spec import ArchSpec, BlockSpec

COLUMNS = ("input", "operator", "exp size", "#out", "SE", "NL", "s")
_NL = {"relu": "RE", "relu6": "RE6", "hswish": "HS"}


def _size(side: int, channels: int) -> str:
    return f"{side}²x{channels}"


def _block_row(block: BlockSpec, in_channels: int, side: int) -> tuple[str, ...]:
    kernel = f"{block.kernel}x{block.kernel}"
    operator = f"{block_type(block.op).table_name} {kernel}"
    exp = "-" if block.exp_channels is None else str(block.exp_channels)
    return (_size(side, in_channels), operator, exp, str(block.out_channels), "yes" if block.se else "-",
            _NL[block.act], str(block.stride))


def table_rows(spec: ArchSpec, classes_label: str | None = None) -> list[tuple[str, ...]]:
    """Rows of the paper-style table; the classifier's #out is ``classes_label`` or the count."""
    stem, head = spec.stem, spec.head
    rows = [(_size(spec.resolution, spec.in_channels), f"conv2d {stem.kernel}x{stem.kernel}", "-",
             str(stem.out_channels), "-", _NL[stem.act], str(stem.stride))]
    for index, (block, side) in enumerate(zip(spec.blocks, spec.input_resolutions())):
        rows.append(_block_row(block, spec.in_channels_of(index), side))
    final = spec.final_resolution
    rows.append((_size(final, spec.blocks[-1].out_channels), "conv2d 1x1", "-", str(head.feature_channels), "-",
                 _NL[head.act], "1"))
    rows.append((_size(final, head.feature_channels), f"pool {final}x{final}", "-", "-", "-", "-", "1"))
    width = head.feature_channels
    if head.hidden_channels is not None:
        rows.append((_size(1, width), "conv2d 1x1, NBN", "-", str(head.hidden_channels), "-", _NL[head.act], "1"))
        width = head.hidden_channels
    rows.append((_size(1, width), "conv2d 1x1, NBN", "-", classes_label or str(spec.num_classes), "-", "-", "1"))
    return rows


def render_markdown(spec: ArchSpec, classes_label: str | None = None) -> str:
    """The paper-style table as GitHub Markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(spec, classes_label)]
    return "\n".join(lines) + "\n"
