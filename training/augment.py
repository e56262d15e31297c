"""Batch augmentation on tensors, driven by an explicit ``torch.Generator``.

``affine`` (digits, characters): rotation within +/-10 degrees, scale 0.9-1.1 and a shift of up
to 2/32 of the side, border pixels repeated (the background); no flips, which would turn
digits into other symbols. ``crop_flip`` (natural images, CIFAR-like): a random shift of up
to 1/8 of the side with zero (mean) padding, i.e. the classic pad-and-crop, and a horizontal
flip with probability 1/2. Both are one ``affine_grid`` + ``grid_sample`` per batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_ROTATION_DEG = 10.0
SCALE_RANGE = (0.9, 1.1)
AFFINE_SHIFT = 2.0 / 32.0
CROP_SHIFT = 1.0 / 8.0


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _shift_pixels(n: int, side: int, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Whole-pixel shifts in normalized coordinates (2 / side per pixel) so crops are exact."""
    max_px = max(int(round(side * fraction)), 1)
    return torch.randint(-max_px, max_px + 1, (n, 2), generator=generator).float() * (2.0 / side)


def affine_matrices(n: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 2, 3)`` matrices of random rotation, scale and whole-pixel shift."""
    angle = _uniform(n, -MAX_ROTATION_DEG, MAX_ROTATION_DEG, generator) * (math.pi / 180.0)
    scale = _uniform(n, *SCALE_RANGE, generator)
    shift = _shift_pixels(n, side, AFFINE_SHIFT, generator)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)


def crop_flip_matrices(n: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 2, 3)`` matrices of a whole-pixel shift and a random horizontal flip."""
    shift = _shift_pixels(n, side, CROP_SHIFT, generator)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    zero, one = torch.zeros(n), torch.ones(n)
    return torch.stack([torch.stack([flip, zero, shift[:, 0]], 1), torch.stack([zero, one, shift[:, 1]], 1)], 1)


def augment_batch(x: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """``x`` (N, C, H, W) augmented by ``policy`` (``affine``, ``crop_flip`` or ``none``).

    Random numbers come from ``generator`` (a CPU generator), so results do not depend on
    the device or on the global RNG.
    """
    if policy == "none":
        return x
    n, side = x.shape[0], x.shape[-1]
    if policy == "affine":
        theta, padding = affine_matrices(n, side, generator), "border"
    elif policy == "crop_flip":
        theta, padding = crop_flip_matrices(n, side, generator), "zeros"
    else:
        raise ValueError(f"augmentation policy = {policy!r} is not allowed; expected 'affine', 'crop_flip' or 'none'")
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)
