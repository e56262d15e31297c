"""Channel-width rounding shared by the spec, the block types and the builder (torch-free,
standard library only). ``search_spaces.spec`` re-exports both functions."""
from __future__ import annotations


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going below 90% of it.

    The rounding rule of the reference implementations (TF MobileNet, torchvision, timm).
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def se_channels(channels: int) -> int:
    """Squeeze width of the SE module: make_divisible(channels / 4, 8) (paper section 5.3)."""
    return make_divisible(channels / 4, 8)
