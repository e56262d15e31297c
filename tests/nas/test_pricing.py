"""How a search prices its candidates (nas.pricing.price_function, SearchConfig.price_by): the
table's prediction, or the whole model measured end to end paired with a model alike in size."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

import latency.lazy
from latency.lazy import LazyPredictor
from nas.pricing import price_function
from nas.search import SearchConfig
from search_spaces.encoding import format_spec
from search_spaces.resolve import resolve_spec

SMALL = resolve_spec("mobilenetv3-small", width=1.0, resolution=32, num_classes=10, in_channels=1)
LARGE = resolve_spec("mobilenetv3-large", width=0.5, resolution=32, num_classes=10, in_channels=1)


class FakePredictor:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def predict_ms(self, spec):
        self.calls.append(("predict", format_spec(spec)))
        return 0.1

    def measure_ms(self, specs):
        self.calls.append(("reference", *map(format_spec, specs)))
        return [0.2]

    def measure_like_ms(self, specs, like, like_ms):
        self.calls.append(("like", format_spec(like), like_ms, *map(format_spec, specs)))
        return [like_ms * 1.5]


def test_table_pricing_is_the_tables_prediction():
    predictor = FakePredictor()
    assert price_function(predictor, "table")(LARGE) == 0.1
    assert predictor.calls == [("predict", format_spec(LARGE))]


def test_measured_pricing_pairs_with_the_given_model_once_per_spec():
    predictor = FakePredictor()
    price = price_function(predictor, "measured", format_spec(SMALL), 0.4)
    assert price(LARGE) == pytest.approx(0.6) and price(LARGE) == pytest.approx(0.6)
    assert predictor.calls == [("like", format_spec(SMALL), 0.4, format_spec(LARGE))]  # measured once, not twice


def test_measured_pricing_without_a_model_pairs_with_the_tables_reference():
    predictor = FakePredictor()
    assert price_function(predictor, "measured")(LARGE) == 0.2
    assert predictor.calls == [("reference", format_spec(LARGE))]


def test_measure_like_is_the_paired_ratio_times_the_models_latency(monkeypatch):
    seen = []

    def fake_measure(measurer, specs, reference, **kwargs):
        seen.append((specs, reference, kwargs["precision"]))
        return [SimpleNamespace(ratio=1.25) for _ in specs]

    monkeypatch.setattr(latency.lazy, "measure_specs", fake_measure)
    predictor = SimpleNamespace(table=SimpleNamespace(manifest={"measurer": {"measurer": "ort-cpu"}}))
    assert LazyPredictor.measure_like_ms(predictor, [LARGE], SMALL, 0.4) == [pytest.approx(0.5)]
    assert seen[0][0] == [LARGE] and seen[0][1] == SMALL and seen[0][2] is not None


@pytest.mark.parametrize("kwargs, message", [
    ({"price_by": "guessed"}, "--price-by 'guessed' is not known"),
    ({"price_by": "measured", "measure_like": format_spec(SMALL)}, "measure_like and measure_like_ms go together"),
    ({"measure_like": format_spec(SMALL), "measure_like_ms": 0.4}, "measure_like applies to --price-by measured"),
])
def test_bad_pricing_settings_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchConfig(target_ms=1.0, **kwargs)


def test_pricing_settings_survive_the_manifest():
    config = SearchConfig(target_ms=1.0, price_by="measured", measure_like=format_spec(SMALL), measure_like_ms=0.4)
    assert SearchConfig.from_dict(config.to_dict()) == config
    older = {k: v for k, v in SearchConfig(target_ms=1.0).to_dict().items()
             if k not in ("price_by", "measure_like", "measure_like_ms")}
    assert SearchConfig.from_dict(older).price_by == "table"  # a search recorded before the setting


@pytest.mark.parametrize("flag, expected", [([], "table"), (["--price-by", "measured"], "measured")])
def test_search_command_passes_the_pricing(flag, expected):
    from mobilenas.cli import build_parser
    from mobilenas.cli_search import config_from_args

    args = build_parser().parse_args(["search", "--target-ms", "1.0", *flag])
    assert config_from_args(args).price_by == expected
