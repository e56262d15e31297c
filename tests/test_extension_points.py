"""Every extension point of ARCHITECTURE.md takes a new component registered from this test
module alone, without touching the packages: a block type (operator), a search space, a search
strategy, a latency measurer and a candidate evaluator, each exercised through the public path
(builder, counting, encodings, latency keys, paper table, timm export; search driver; paired
timing)."""
from __future__ import annotations

import dataclasses
import math
from itertools import product

import numpy as np
import pytest
import torch
from torch import nn

from latency.endtoend import measure_specs, prepared_model
from latency.features import model_features
from latency.keys import key_activations, key_cost, key_module, space_keys, spec_keys
from latency.measurers import onnx_bytes_of
from latency.registry import MEASURERS, make_measurer, measurer_from_recorded
from nas.candidate import CandidateResult
from nas.evaluator import EVALUATORS, make_evaluator, request_fn
from nas.registry import STRATEGIES, make_strategy
from nas.search import SearchConfig, SearchDriver, run_serial
from nas.supernet import SuperBlock
from nas.strategy import Outcome, Proposal, SpaceExhausted, Strategy
from netadapt.transfer import select_channels, shrink_state_dict
from search_spaces.blocks.base import BlockType, Part, TimmForm
from search_spaces.blocks.registry import BLOCK_TYPES
from search_spaces.builder import build_model
from search_spaces.costs import Cost, conv_cost, out_side, se_cost
from search_spaces.counting import block_cost, count_madds, count_params
from search_spaces.encoding import format_spec, parse_spec, spec_from_json, spec_to_json
from search_spaces.layers import ConvBNAct, SqueezeExcite
from search_spaces.paper_table import render_markdown
from search_spaces.registry import SPACES, SearchSpace, make_space
from search_spaces.rewrite import se_squeeze_widths, with_widths
from search_spaces.spec import ArchSpec, BlockSpec, HeadSpec, StemSpec
from search_spaces.timm_arch import blocks_from_arch_def, to_arch_def
from tests.netadapt.test_transfer import _complement, _randomized_model


# -- a block type: Fused-MBConv (EfficientNetV2): k x k expansion conv, SE, linear 1x1 projection --
class FusedMBConv(nn.Module):
    def __init__(self, in_channels, block, layers):
        super().__init__()
        exp = block.exp_channels
        self.conv_exp = ConvBNAct(in_channels, exp, block.kernel, block.stride, act=block.act, layers=layers)
        self.se = SqueezeExcite(exp) if block.se else None
        self.conv_pwl = ConvBNAct(exp, block.out_channels, 1, layers=layers)
        self.skip = block.skip

    def forward(self, x):
        out = self.conv_exp(x)
        out = self.conv_pwl(out if self.se is None else self.se(out))
        return out + x if self.skip else out


def _fused_cost(block, in_channels, in_side):
    side, exp = out_side(in_side, block.stride), block.exp_channels
    se = se_cost(exp) if block.se else Cost()
    return conv_cost(in_channels, exp, block.kernel, side) + se + conv_cost(exp, block.out_channels, 1, side)


def _fused_activations(block, in_channels, in_side):
    side = out_side(in_side, block.stride)
    inputs = in_channels * in_side * in_side
    return inputs + (block.exp_channels + block.out_channels) * side * side + (inputs if block.skip else 0)


def _fused_parts(block, has_expansion_conv):
    se = (Part("se", "exp", kind="se"),) if block.se else ()
    return (Part("conv_exp", "exp", "in"), *se, Part("conv_pwl", "out", "exp"))


FUSED = BlockType(
    op="fused", token="fr", table_name="fused", expands=True, cost=_fused_cost, activations=_fused_activations,
    build=FusedMBConv, parts=_fused_parts, expansion_conv=lambda block, in_channels: True,
    timm=TimmForm(("er",), lambda b, c: f"er_r1_k{b.kernel}_s{b.stride}_e{b.exp_channels / c:.6g}_c{b.out_channels}",
                  lambda op, ratio, c: round(c * float(ratio))),
)


@pytest.fixture
def fused(monkeypatch):
    monkeypatch.setitem(BLOCK_TYPES, "fused", FUSED)


def fused_spec():
    blocks = (BlockSpec("fused", 3, 2, 64, 24, True, "hswish"), BlockSpec("fused", 3, 1, 96, 24, False, "relu", True),
              BlockSpec("bneck", 5, 2, 72, 40, True, "hswish"), BlockSpec("conv", 3, 1, None, 40, False, "relu", True))
    return ArchSpec(blocks=blocks, stem=StemSpec(16, 3, 2, "hswish"), head=HeadSpec(64, 128, "hswish", 0.2),
                    resolution=32, in_channels=1, num_classes=10)


def measured_madds(model, shape):
    """Conv and linear multiply-adds of one forward pass, counted by hooks."""
    total = []

    def hook(module, inputs, output):
        per_output = module.weight[0].numel()
        total.append(per_output * output[0].numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()(torch.randn(1, *shape))
    for handle in handles:
        handle.remove()
    return sum(total)


def test_an_unregistered_block_type_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"block.op = 'fused' is not allowed; expected one of \('bneck', 'conv'\)"):
        BlockSpec("fused", 3, 1, 32, 16)


def test_a_registered_block_type_builds_and_counts(fused):
    spec = fused_spec()
    model = build_model(spec)
    assert isinstance(model.blocks[0], FusedMBConv) and model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    assert count_params(spec) == sum(p.numel() for p in model.parameters())
    assert count_madds(spec) == measured_madds(model, (1, 32, 32))


def test_a_registered_block_type_round_trips_every_encoding(fused):
    spec = fused_spec()
    text = format_spec(spec)
    assert "|fr_k3_s2_h64_c24_se1_hs_sk0|fr_k3_s1_h96_c24_se0_re_sk1|" in text
    assert parse_spec(text) == spec and spec_from_json(spec_to_json(spec)) == spec
    assert blocks_from_arch_def(to_arch_def(spec), spec) == spec
    assert to_arch_def(spec)[0][0] == "er_r1_k3_s2_e4_c24_se0.25"


def test_a_registered_block_type_has_latency_keys(fused):
    spec = fused_spec()
    key = spec_keys(spec)[1]
    assert (key.op, key.exp_channels, key.input_side) == ("fused", 64, 16)
    module = key_module(key)
    assert isinstance(module, FusedMBConv) and module.eval()(torch.randn(1, *key.input_shape())).shape == (1, 24, 8, 8)
    assert key_cost(key) == (block_cost(spec.blocks[0], 16, 16).params, block_cost(spec.blocks[0], 16, 16).madds)
    assert key_activations(key) == 16 * 16 * 16 + (64 + 24) * 8 * 8


def test_a_registered_block_type_has_a_paper_table_row_and_widths(fused):
    spec = fused_spec()
    assert "| 16²x16 | fused 3x3 | 64 | 24 | yes | HS | 2 |" in render_markdown(spec)
    assert se_squeeze_widths(spec)[0] == 16  # SE on the expanded map: make_divisible(64 / 4)
    assert with_widths(spec, {0: {"exp_channels": 48}}).blocks[0].exp_channels == 48


def test_netadapt_carries_a_registered_block_types_weights(fused):
    """Shrinking a fused block's hidden width keeps its largest filters; with the dropped
    channels zeroed in the old model, old and new compute the same (as for the built-in types)."""
    old = fused_spec()
    new = with_widths(old, {0: {"exp_channels": 48}, 1: {"exp_channels": 64}, 2: {"out_channels": 32},
                             3: {"out_channels": 32}})
    model = _randomized_model(old)
    state = model.state_dict()
    sel = select_channels(old, state, new)
    shrunk = build_model(new).eval()
    shrunk.load_state_dict(shrink_state_dict(old, state, new))  # strict: every key and shape
    zeroed = {k: v.clone() for k, v in state.items()}
    for index, width in ((0, 64), (1, 96)):
        dropped = _complement(sel.expansions[index], width)
        for name in ("conv.weight", "bn.weight", "bn.bias"):
            zeroed[f"blocks.{index}.conv_exp.{name}"][dropped] = 0
    squeeze = zeroed["blocks.0.se.conv_reduce.weight"].shape[0]
    for name in ("weight", "bias"):
        zeroed[f"blocks.0.se.conv_reduce.{name}"][_complement(sel.se_hidden[0], squeeze)] = 0
    dropped = _complement(sel.outputs[2], 40)
    for prefix in ("blocks.2.conv_pwl", "blocks.3.conv"):
        for name in ("conv.weight", "bn.weight", "bn.bias"):
            zeroed[f"{prefix}.{name}"][dropped] = 0
    model.load_state_dict(zeroed)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), shrunk(x), atol=1e-5)


class MaddsTable:
    """A latency table that prices every layer by its MAdds (what the features read of a table)."""

    manifest: dict = {}

    def lookup(self, key):
        return key_cost(key)[1] / 1e6

    lookup_cold = lookup

    def keys_sum_ms(self, keys, *, cold=False):
        return sum(self.lookup(k) for k in keys)

    def calibration(self, resolution):
        return {"features": ["sum_ms"], "coef": [1.0], "intercept_ms": 0.0}


def test_a_registered_block_type_has_learned_predictor_features(fused):
    spec = fused_spec()
    features = model_features(MaddsTable(), spec)
    assert (features["n_bneck"], features["n_conv"], features["n_dwsep"]) == (3, 1, 0)  # 2 fused + 1 bneck expand
    assert features["calibrated_ms"] == pytest.approx(count_madds(spec) / 1e6)


def test_the_supernet_refuses_a_block_type_it_has_no_branch_for(fused):
    with pytest.raises(ValueError, match="block type 'fused' has no supernet branch"):
        SuperBlock.branch_name(fused_spec().blocks[0], 16)
    assert SuperBlock.branch_name(fused_spec().blocks[2], 24) == "mbconv"


# -- a search space: a chain of three blocks, each choosing its operator and kernel ---------------
OPS = ("bneck", "conv")
KERNELS = (3, 5)
WIDTHS = ((24, 2), (24, 1), (40, 2))


@dataclasses.dataclass(frozen=True)
class ChainSpace:
    resolution: int = 224
    num_classes: int = 1000
    in_channels: int = 3
    stem: StemSpec = StemSpec(16, 3, 2, "hswish")
    head: HeadSpec = HeadSpec(64, None, "relu", 0.0)

    name = "toy-chain"

    @property
    def cardinalities(self):
        return (len(OPS), len(KERNELS)) * len(WIDTHS)

    def _block(self, op, kernel, in_channels, out, stride):
        exp = None if op == "conv" else 3 * in_channels
        return BlockSpec(op, kernel, stride, exp, out, False, "relu", stride == 1 and in_channels == out)

    def decode(self, indices):
        blocks, in_channels = [], self.stem.out_channels
        for (out, stride), op, kernel in zip(WIDTHS, indices[0::2], indices[1::2]):
            blocks.append(self._block(OPS[op], KERNELS[kernel], in_channels, out, stride))
            in_channels = out
        return ArchSpec(blocks=tuple(blocks), stem=self.stem, head=self.head, resolution=self.resolution,
                        in_channels=self.in_channels, num_classes=self.num_classes)

    def encode(self, spec):
        found = [next(i for i in product(range(2), range(2)) if self.decode(i * 3).blocks[n] == b)
                 for n, b in enumerate(spec.blocks)]
        return tuple(v for pair in found for v in pair)

    def canonicalize(self, indices):
        return tuple(int(i) for i in indices)

    def sample_indices(self, rng):
        return tuple(int(rng.integers(n)) for n in self.cardinalities)

    def mutate_indices(self, indices, rng, max_tries=100):
        position = int(rng.integers(len(indices)))
        return tuple(1 - v if i == position else v for i, v in enumerate(indices))

    def size(self):
        return 4 ** len(WIDTHS)

    def sample(self, rng):
        return self.decode(self.sample_indices(rng))

    def block_contexts(self):
        seen = set()
        for indices in product(range(2), repeat=2 * len(WIDTHS)):
            spec = self.decode(indices)
            sides = spec.input_resolutions()
            seen |= {(b, spec.in_channels_of(i), sides[i]) for i, b in enumerate(spec.blocks)}
        return sorted(seen, key=repr)


@pytest.fixture
def chain(monkeypatch):
    monkeypatch.setitem(SPACES, "toy-chain", ChainSpace)
    return make_space("toy-chain", resolution=32, num_classes=10, in_channels=1)


def test_a_registered_space_meets_the_protocol_and_its_keys_cover_its_specs(chain):
    assert isinstance(chain, SearchSpace)
    keys = set(space_keys(chain))
    rng = np.random.default_rng(0)
    for _ in range(8):
        spec = chain.sample(rng)
        assert set(spec_keys(spec)) <= keys and chain.decode(chain.encode(spec)) == spec


# -- a strategy: enumerate the space in index order ------------------------------------------
@dataclasses.dataclass(frozen=True)
class EnumerateConfig:
    start: int = 0


class EnumerateStrategy:
    config_class = EnumerateConfig

    def __init__(self, *, space, seed, config=None):
        self.space, self.config = space, config or EnumerateConfig()
        self.next, self.told = self.config.start, {}

    def ask(self):
        points = list(product(*(range(n) for n in self.space.cardinalities)))
        if self.next >= len(points):
            raise SpaceExhausted
        self.next += 1
        return Proposal(str(self.next - 1), self.space.canonicalize(points[self.next - 1]))

    def tell(self, proposal_id, outcome: Outcome):
        self.told[proposal_id] = outcome.reward

    def state_dict(self):
        return {"next": self.next, "told": dict(self.told)}

    def load_state_dict(self, state):
        self.next, self.told = state["next"], dict(state["told"])


# -- an evaluator: a closed-form "accuracy" that grows with MAdds ------------------------------
@dataclasses.dataclass(frozen=True)
class MaddsEvaluator:
    name = "toy-madds"
    per_epoch = False

    def evaluate(self, spec, *, on_epoch=None):
        return CandidateResult(1 - 1 / math.log(count_madds(spec)), 0.01, "finished", 0, 0.0)

    def describe(self):
        return {"name": self.name}


def test_a_registered_strategy_and_evaluator_run_a_search_over_a_registered_space(chain, monkeypatch, tmp_path):
    monkeypatch.setitem(STRATEGIES, "toy-enumerate", EnumerateStrategy)
    monkeypatch.setitem(EVALUATORS, "toy-madds", lambda config, data: MaddsEvaluator())
    config = SearchConfig(target_ms=1.0, strategy="toy-enumerate", evaluator="toy-madds", trials=5,
                          strategy_config={"start": 2})
    strategy = make_strategy("toy-enumerate", chain, seed=0, config=config.strategy_config)
    assert isinstance(strategy, Strategy)
    driver = SearchDriver(tmp_path, config, chain, strategy, lambda spec: count_madds(spec) / 1e6)
    run_serial(driver, request_fn(make_evaluator(config, data=None)))
    assert driver.done == 5 and sorted(strategy.told, key=int) == ["2", "3", "4", "5", "6"]


# -- a measurer: latency proportional to the ONNX size (deterministic) -------------------------
@dataclasses.dataclass(frozen=True)
class SizeSettings:
    repeats: int = 3
    batch: int = 1


class SizeMeasurer:
    name = "toy-size"

    def __init__(self, settings):
        self.settings = settings

    def settings_dict(self):
        return {"measurer": self.name, **dataclasses.asdict(self.settings)}

    def measure(self, model, input_shape):
        size = len(onnx_bytes_of(model, (1, *input_shape[-3:])))
        return np.full(self.settings.repeats, size / 1e5)


def test_a_registered_measurer_is_made_recorded_and_used_for_paired_timing(chain, monkeypatch):
    monkeypatch.setitem(MEASURERS, "toy-size", (SizeMeasurer, SizeSettings))
    measurer = make_measurer("toy-size", SizeSettings(repeats=2))
    assert measurer_from_recorded(measurer.settings_dict()).settings == SizeSettings(repeats=2)
    model, reference = chain.decode((1, 0) * 3), chain.decode((0, 1) * 3)
    ratio, = measure_specs(measurer, [model], reference, pairs=3)
    sizes = [len(prepared_model(measurer, spec)) for spec in (model, reference)]
    assert ratio.ratio == pytest.approx(sizes[0] / sizes[1]) and ratio.pairs == 3
