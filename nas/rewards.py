"""Search rewards: pure functions of (top-1 accuracy, latency, target latency).

* MnasNet (Tan et al. 2019, section 3, eq. 2): ``ACC x (LAT / T) ** w`` with ``w = alpha`` if
  ``LAT <= T`` else ``beta``. The soft constraint is ``alpha = beta = -0.07``; MobileNetV3-Small
  (Howard et al. 2019, section 4.1) used ``w = -0.15``; the hard constraint is ``alpha = 0,
  beta = -1`` (a model over the target is scaled by ``T / LAT``).
* TuNAS absolute reward (Bender et al. 2020, "Can weight sharing outperform random architecture
  search?", section 3.3): ``ACC + beta x |LAT / T - 1|`` with ``beta < 0`` (the paper and its
  reference code write the cost exponent as a negative number added to the quality; -0.07 here
  by default), which peaks at the target instead of rewarding ever-faster models.

Accuracy is a fraction in [0, 1]. A non-finite or missing accuracy or latency (a failed, diverged
or unmeasurable trial) gets :attr:`RewardConfig.worst`, never an exception, and every reward is
at least ``worst``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

REWARD_KINDS = ("mnasnet", "hard", "absolute")
MNASNET_W = -0.07
MOBILENETV3_SMALL_W = -0.15
TUNAS_BETA = -0.07
# The absolute reward is unbounded below; it is floored at a zero-accuracy model this many
# times over (or under) the target, which defines a finite worst reward.
ABSOLUTE_WORST_DEVIATION = 9.0
_DEFAULTS = {"mnasnet": (MNASNET_W, MNASNET_W), "hard": (0.0, -1.0), "absolute": (0.0, TUNAS_BETA)}


def mnasnet_reward(top1: float, latency_ms: float, *, target_ms: float, alpha: float, beta: float) -> float:
    """MnasNet's ``ACC x (LAT/T)^w``, w = alpha below or at the target, beta above (section 3)."""
    ratio = latency_ms / target_ms
    return top1 * ratio ** (alpha if latency_ms <= target_ms else beta)


def absolute_reward(top1: float, latency_ms: float, *, target_ms: float, beta: float) -> float:
    """TuNAS's ``ACC + beta x |LAT/T - 1|`` (Bender et al. 2020, section 3.3)."""
    return top1 + beta * abs(latency_ms / target_ms - 1.0)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RewardConfig:
    """Which reward, its target and exponents; ``config(top1, latency_ms)`` evaluates it.

    ``alpha``/``beta`` left as None take the kind's published values: mnasnet -0.07/-0.07,
    hard 0/-1, absolute (alpha unused, 0) / -0.07.
    """

    kind: str
    target_ms: float
    alpha: float | None = None
    beta: float | None = None
    worst: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise ValueError(f"reward kind {self.kind!r} is not known; expected one of {REWARD_KINDS}")
        if not _is_finite_number(self.target_ms) or self.target_ms <= 0:
            raise ValueError(f"reward target_ms={self.target_ms!r}; expected a finite number > 0")
        alpha = _DEFAULTS[self.kind][0] if self.alpha is None else self.alpha
        beta = _DEFAULTS[self.kind][1] if self.beta is None else self.beta
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not _is_finite_number(value) or value > 0:
                raise ValueError(f"reward {name}={value!r}; expected a finite number <= 0 (a latency penalty)")
        if self.kind in ("hard", "absolute") and alpha != 0:
            raise ValueError(f"reward alpha={alpha!r} with kind {self.kind!r}; expected 0 (no reward for being under the target)")
        object.__setattr__(self, "alpha", float(alpha))
        object.__setattr__(self, "beta", float(beta))
        # mnasnet/hard: ACC >= 0 times a positive factor, so 0 bounds them; absolute is floored.
        object.__setattr__(self, "worst", beta * ABSOLUTE_WORST_DEVIATION if self.kind == "absolute" else 0.0)

    @classmethod
    def mnasnet(cls, target_ms: float, w: float = MNASNET_W) -> "RewardConfig":
        """The soft constraint with one exponent (-0.07 MnasNet, -0.15 MobileNetV3-Small)."""
        return cls("mnasnet", target_ms, w, w)

    def __call__(self, top1: float | None, latency_ms: float | None) -> float:
        """The reward; ``worst`` for a missing or non-finite value.

        Raises:
            ValueError: a finite ``top1`` outside [0, 1] (a percentage passed by mistake) or a
                finite ``latency_ms`` <= 0.
        """
        if not (_is_finite_number(top1) and _is_finite_number(latency_ms)):
            return self.worst
        if not 0.0 <= top1 <= 1.0:
            raise ValueError(f"top1={top1!r}; expected a fraction in [0, 1]")
        if latency_ms <= 0:
            raise ValueError(f"latency_ms={latency_ms!r}; expected > 0")
        if self.kind == "absolute":
            value = absolute_reward(top1, latency_ms, target_ms=self.target_ms, beta=self.beta)
        else:
            value = mnasnet_reward(top1, latency_ms, target_ms=self.target_ms, alpha=self.alpha, beta=self.beta)
        return max(float(value), self.worst)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe settings (``worst`` is derived, not stored)."""
        data = asdict(self)
        del data["worst"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RewardConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        unknown = sorted(set(data) - {"kind", "target_ms", "alpha", "beta"})
        if unknown:
            raise ValueError(f"unknown reward settings {unknown}; expected kind, target_ms, alpha, beta")
        return cls(**data)
