"""Settings of ``mobilenas run``: the whole MobileNetV3 recipe (section 4: platform-aware global
search, then NetAdapt down to the target, then full training) at three budgets."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from storage.settings import check_settings, setting, settings_from_dict

@dataclass(frozen=True)
class PipelineBudget:
    """How much work each stage does. The search aims ``search_target_factor`` above the final
    target and NetAdapt trims the found model down to it, as MobileNetV3 section 4.2 does;
    ``netadapt_delta`` is NetAdapt's per-iteration cut as a fraction of the start latency (the
    paper's 0.01 needs ~30 iterations for a 25% cut: the small budgets take bigger steps).
    With the supernet evaluator the supernet trains ``supernet_epochs`` and the search scores
    ``supernet_trials`` candidates (seconds each) instead of ``search_trials`` proxy trainings."""

    search_trials: int
    search_epochs: int
    search_target_factor: float
    pretrain_epochs: int
    short_steps: int
    netadapt_delta: float
    long_epochs: int
    final_epochs: int
    references: tuple[tuple[str, float], ...]
    supernet_epochs: int = 4
    supernet_trials: int = 48
    supernet_threads: int | None = None
    """Torch threads of the supernet's training, at most the run's ``threads`` (None: the run's)."""
    netadapt_max_proposals: int | None = None
    """NetAdapt's proposals fine-tuned per iteration at most (``netadapt.loop.NetAdaptConfig``; None: all)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "references": [list(r) for r in self.references]}


BUDGETS = {
    "small": PipelineBudget(search_trials=8, search_epochs=2, search_target_factor=1.25, pretrain_epochs=3,
                            short_steps=5, netadapt_delta=0.15, long_epochs=0, final_epochs=7,
                            references=(("mobilenetv3-small", 1.0),), supernet_epochs=2, supernet_trials=32,
                            supernet_threads=1, netadapt_max_proposals=6),
    "medium": PipelineBudget(search_trials=32, search_epochs=2, search_target_factor=1.25, pretrain_epochs=10,
                             short_steps=100, netadapt_delta=0.05, long_epochs=3, final_epochs=30,
                             references=(("mobilenetv3-small", 1.0), ("mobilenetv3-small", 0.75),
                                         ("mobilenetv3-large", 0.5)), supernet_epochs=8, supernet_trials=300),
    "large": PipelineBudget(search_trials=100, search_epochs=2, search_target_factor=1.25, pretrain_epochs=20,
                            short_steps=300, netadapt_delta=0.02, long_epochs=5, final_epochs=50,
                            references=(("mobilenetv3-small", 1.0), ("mobilenetv3-small", 0.75),
                                        ("mobilenetv3-large", 0.5), ("mobilenetv3-large", 0.75)),
                            supernet_epochs=15, supernet_trials=1000),
}
"""``small`` is the README's demo (minutes on 2 cores); ``medium``/``large`` are for real use.
``small`` is trimmed for a short demo on a noisy 2-core machine: 2 supernet epochs, 32
candidates and 5 fine-tune steps per NetAdapt proposal (at 4, 48 and 10 the demo took 11-13.5
minutes under the load injector without set-up; at these, with set-up, 10.6-15.9 minutes at first and
8.2-9.1 minutes, median 8.9, after the later NetAdapt, measurement and threading changes;
``results/reference/README.md``). When NetAdapt's deciding checks came to spread over 10 s and
its rounds to land at the band's middle, a seed took 9.9 minutes: the small budget then dropped
NetAdapt's long-term fine-tune (the final training that follows starts from NetAdapt's weights
and is that fine-tune), one final epoch (7, the references alike) and fine-tunes at most 6 of a
NetAdapt iteration's proposals (a last step asking for a small cut offered 22 in one run, whose
NetAdapt stage took 197 s and the demo 10.7 minutes). Its supernet trains on one thread: one epoch of the demo's supernet took 50.8 s on one thread and 61.4 s on two under the
load injector (a two-thread step waits for the busier core; on the quiet machine two threads are
faster, but the run's result must not depend on which it found, so the count is fixed). Two
supernet epochs, not three: a slower hour of the same VM (its reference model 8-13% slower)
took the demo with set-up to 10.7-11.4 minutes at three."""


COMPARE_METHODS = ("netadapt", "search")
"""How ``mobilenas platforms compare`` finds each platform's model: NetAdapt from one start
model, or this recipe's search, NetAdapt and final training per platform."""


@dataclass(frozen=True)
class PipelineConfig:
    """One pipeline run. Exactly one of ``target_ms`` (a number) and ``target_like`` (a spec at
    width ``target_width`` whose end-to-end latency on this machine, times ``target_scale``,
    becomes the target; it is then trained as a reference too). ``space`` defaults to the
    MnasNet decisions on MobileNetV3-Small's stages and last stage (``mnasnet-v3small``: at 32x32
    on a CPU a model's latency is mostly its depth, and the MobileNetV2 skeleton's models ran
    1.7x to 6.1x Small's latency) and ``w`` to -0.15, the exponent MobileNetV3 section 4.1 used
    for small models. ``platform``: the named platform's record
    (:meth:`latency.platforms.Platform.record`) whose measurer the table is built with (None:
    the default ONNX Runtime CPU settings); a platform's own table is used when it has one.
    ``netadapt_close_on``: what NetAdapt's iterations steer by inside a round, the table's
    predictions or the measurement of each kept model (:mod:`netadapt.steering`).
    ``grow_start``: a NetAdapt start measured under the budget is grown to it first
    (:mod:`pipeline.netadapt_grow`); off, it is kept as it is.
    ``evaluator``: ``proxy`` trains every search candidate briefly (MnasNet); ``supernet`` trains
    a weight-sharing supernet of ``space`` (one of its MBConv spaces) once, or uses the finished
    ``supernet`` run folder, scores candidates with inherited weights, and starts NetAdapt and
    the final training from the found sub-network's weights (once-for-all). ``reward``: the
    search's reward (:mod:`nas.rewards`): ``mnasnet`` with exponent ``w`` (MnasNet, MobileNetV3),
    ``hard`` (MnasNet's hard constraint, alpha 0 / beta -1: a model over the search's target is
    scaled by target/latency; ``w`` does not apply) or ``absolute`` (TuNAS, beta ``w``).
    ``price_by``: how the search prices its candidates (:data:`nas.search.PRICE_BY`): ``table``
    uses the table's predictions; ``measured`` times each candidate end to end paired with the
    ``--target-like`` model (or the table's reference), as MnasNet measured real latency (at
    32x32 a table ranked a deep candidate 1.3x MobileNetV3-Small that measured 1.75x). Measured
    pricing is not the default: on the demo (seed 0, load injector) it added 64 s to the search
    and the found model still measured 1.53x the budget (the reward traded latency for the
    supernet's accuracy), so NetAdapt's work was not reduced; with ``reward="hard"`` too (seed 1,
    a 2-core AMD EPYC) none of the 32 candidates measured under 1.35x the budget, and the start
    was as far over as the soft reward's."""

    data: str
    target_ms: float | None = setting(None, kind=float, low=0, low_open=True, optional=True)
    target_like: str | None = None
    target_width: float = setting(1.0, kind=float, low=0, low_open=True)
    target_scale: float = setting(1.0, kind=float, low=0, low_open=True)
    budget: str = "small"
    seed: int = setting(0, low=0)
    strategy: str = "rl"
    space: str = "mnasnet-v3small"
    w: float = -0.15
    table: str | None = None
    on_drift: str = "error"
    address: str | None = None
    workers: int = setting(2, low=1)
    threads: int = setting(2, low=1)
    platform: dict | None = None
    netadapt_close_on: str = "measured"
    evaluator: str = "proxy"
    supernet: str | None = None
    reward: str = "mnasnet"
    price_by: str = "table"
    grow_start: bool = True

    def __post_init__(self) -> None:
        if (self.target_ms is None) == (self.target_like is None):
            raise ValueError("give exactly one of --target-ms and --target-like")
        check_settings(self, "{flag}")
        if self.platform is not None:
            from latency.platforms import Platform

            Platform.from_record(self.platform)
        if self.budget not in BUDGETS:
            raise ValueError(f"--budget {self.budget!r} is not known; expected one of {sorted(BUDGETS)}")
        from search_spaces.registry import SPACES

        if self.space not in SPACES:
            raise ValueError(f"--space {self.space!r} is not known; expected one of {sorted(SPACES)}")
        if not (isinstance(self.w, (int, float)) and math.isfinite(self.w) and self.w < 0):
            raise ValueError(f"--w = {self.w!r} is not allowed; expected a negative number (MnasNet -0.07, "
                             "MobileNetV3-Small -0.15)")
        self._check_evaluator()
        from nas.rewards import REWARD_KINDS

        if self.reward not in REWARD_KINDS:
            raise ValueError(f"--reward {self.reward!r} is not known; expected one of {list(REWARD_KINDS)}")
        from netadapt.steering import check_close_on

        check_close_on(self.netadapt_close_on)
        from nas.search import PRICE_BY

        if self.price_by not in PRICE_BY:
            raise ValueError(f"--price-by {self.price_by!r} is not known; expected one of {list(PRICE_BY)}")
        if self.on_drift not in ("error", "rescale", "force"):
            raise ValueError(f"on_drift {self.on_drift!r} is not allowed; expected error, rescale or force")

    def _check_evaluator(self) -> None:
        if self.evaluator not in ("proxy", "supernet"):
            raise ValueError(f"--evaluator {self.evaluator!r} is not known; expected proxy or supernet")
        if self.evaluator == "proxy" and self.supernet is not None:
            raise ValueError("--supernet applies to --evaluator supernet only")
        if self.evaluator == "supernet":
            from nas.supernet import SUPERNET_SPACES, no_supernet_message

            if self.space not in SUPERNET_SPACES:
                raise ValueError(no_supernet_message(self.space) + " (--evaluator supernet)")

    @property
    def stage_budget(self) -> PipelineBudget:
        return BUDGETS[self.budget]

    @property
    def references(self) -> tuple[tuple[str, float], ...]:
        """The budget's reference models plus the ``target_like`` model, each once."""
        models = list(self.stage_budget.references)
        if self.target_like is not None and (self.target_like, self.target_width) not in models:
            models.append((self.target_like, self.target_width))
        return tuple(models)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        recorded = {"netadapt_close_on": "predicted", "price_by": "table", "grow_start": False, **data}  # runs
        # recorded before the settings steered NetAdapt and priced the search by the table, and grew no start
        return settings_from_dict(cls, recorded, "pipeline config")


def table_trusted(config: PipelineConfig, table: dict[str, Any]) -> bool:
    """Whether the table stage's result ``table`` is a table this run made or copied on this
    machine (no ``--table``, no platform's table); runs of earlier versions: no ``--table``."""
    return bool(table.get("trusted", config.table is None))
