"""How the models found for different platforms differ, and the matrix as a picture."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from search_spaces.counting import spec_cost
from search_spaces.spec import ArchSpec


def describe_architecture(spec: ArchSpec) -> dict[str, Any]:
    """What MobileNetV3 section 5 discusses when it compares models: kernel sizes, where SE and
    h-swish go, widths and where the expansion goes, and the cost."""
    blocks = spec.blocks
    expansion = [b.exp_channels or 0 for b in blocks]
    cost = spec_cost(spec)
    half = len(blocks) // 2
    return {"blocks": len(blocks), "kernels": dict(sorted(Counter(b.kernel for b in blocks).items())),
            "se_blocks": sum(b.se for b in blocks), "hswish_blocks": sum(b.act == "hswish" for b in blocks),
            "out_channels": [b.out_channels for b in blocks], "exp_channels": expansion,
            "expansion_early": sum(expansion[:half]), "expansion_late": sum(expansion[half:]),
            "head_channels": [spec.head.feature_channels, spec.head.hidden_channels], "params": cost.params, "madds": cost.madds}


def architecture_notes(found: dict[str, ArchSpec]) -> dict[str, dict[str, Any]]:
    """:func:`describe_architecture` of each platform's model."""
    return {name: describe_architecture(spec) for name, spec in found.items()}


def plot_matrix(cells: list[dict[str, Any]], names: Sequence[str], path: Path) -> None:
    """Left: latency relative to each platform's target as a heat map (rows: found for, columns:
    measured on). Right: each platform's models, top-1 against latency ratio there."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [[next(c["latency_ratio"] for c in cells if c["found_for"] == r and c["measured_on"] == m) for m in names]
            for r in names]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    image = left.imshow(grid, cmap="RdYlGn_r", vmin=0.6, vmax=1.4)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            left.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9)
    left.set_xticks(range(len(names)), names, rotation=30, ha="right")
    left.set_yticks(range(len(names)), names)
    left.set_xlabel("measured on")
    left.set_ylabel("found for")
    left.set_title("latency / platform's target")
    figure.colorbar(image, ax=left, fraction=0.046)
    for measured_on in names:
        column = [c for c in cells if c["measured_on"] == measured_on]
        right.plot([c["latency_ratio"] for c in column], [100 * c["top1"] for c in column], "o", label=f"on {measured_on}")
        own = next(c for c in column if c["found_for"] == measured_on)
        right.plot([own["latency_ratio"]], [100 * own["top1"]], "k*", markersize=12)
    right.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    right.set_xlabel("latency / that platform's target (paired)")
    right.set_ylabel("test top-1 (%)")
    right.set_title("each model on each platform (*: its own)")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
