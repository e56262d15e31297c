"""Round trips of the three exact encodings over reference and hundreds of sampled specs."""
import json
import re
from pathlib import Path

import pytest

from search_spaces.encoding import canonical, format_spec, parse_spec, spec_from_dict, spec_from_json, spec_to_dict, spec_to_json
from search_spaces.reference import REFERENCE_SPECS, reference_spec
from tests.helpers import sampled_specs

SAMPLED = sampled_specs(300, seed=11) + sampled_specs(50, seed=12, resolution=224, num_classes=1000, in_channels=3)
REFERENCE = [reference_spec(n, width=w) for n in REFERENCE_SPECS for w in (0.75, 1.0)]


@pytest.mark.parametrize("spec", REFERENCE + SAMPLED[:3])
def test_string_round_trip_reference(spec):
    assert parse_spec(format_spec(spec)) == spec


def test_string_and_json_round_trip_sampled():
    for spec in SAMPLED:
        assert parse_spec(format_spec(spec)) == spec
        assert spec_from_dict(spec_to_dict(spec)) == spec
        assert spec_from_json(spec_to_json(spec)) == spec


def test_string_is_one_line_and_distinguishes_specs():
    strings = {format_spec(s) for s in SAMPLED}
    assert len(strings) == len(set(SAMPLED))
    assert all("\n" not in s and " " not in s for s in strings)


def test_conv_blocks_and_headless_hidden_round_trip():
    spec = reference_spec("mobilenetv2")
    spec = spec.replace_block(3, op="conv", exp_channels=None, se=True)
    assert parse_spec(format_spec(spec)) == spec and spec.head.hidden_channels is None


@pytest.mark.parametrize("text, message", [
    ("", "expected header"),
    ("r224_i3_n1000|stem_k3_s2_c16_hs|head_c960_h1280_hs_d0.2", "expected header"),
    ("r224_i3|stem_k3_s2_c16_hs|ir_k3_s1_e16_c16_se0_re_sk1|head_c960_h1280_hs_d0.2", "header token"),
    ("r224_i3_n1000|stem_k3_s2_c16_hs|ir_k3_s1_e16_c16_se0_xx_sk1|head_c960_h1280_hs_d0.2", "block token"),
    ("r224_i3_n1000|stem_k3_s2_c16_hs|ir_k3_s3_e16_c16_se0_re_sk0|head_c960_h1280_hs_d0.2", "block.stride"),
    ("r224_i3_n1000|stem_k3_s2_c16_hs|ir_k3_s1_e16_c16_se0_re_sk1|head_c960_h1280_hs_d0.2.1", "dropout"),
])
def test_parse_rejects_malformed_strings(text, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(text)


def test_json_rejects_other_schema_version_and_unknown_keys():
    data = spec_to_dict(reference_spec("mobilenetv3-small"))
    with pytest.raises(ValueError, match="schema_version"):
        spec_from_dict(data | {"schema_version": 99})
    with pytest.raises(ValueError, match="unknown keys"):
        spec_from_dict(data | {"extra": 1})
    bad_block = json.loads(json.dumps(data))
    bad_block["blocks"][0]["kernel"] = 4
    with pytest.raises(ValueError, match="block.kernel"):
        spec_from_dict(bad_block)
    missing = json.loads(json.dumps(data))
    del missing["head"]["dropout"]
    with pytest.raises(ValueError, match="missing keys"):
        spec_from_dict(missing)
    with pytest.raises(ValueError, match="malformed"):
        spec_from_json("{not json")
    with pytest.raises(ValueError, match="must be an object"):
        spec_from_dict([1, 2])


def respelt(text: str, token: str) -> str:
    """``text`` with every bottleneck's expansion width spelt ``token`` (``e`` or ``h``)."""
    return re.sub(r"(ir_k\d+_s\d+_)[eh](\d+_c)", rf"\g<1>{token}\2", text)


@pytest.mark.parametrize("token", ["e", "h"])
def test_both_spellings_of_the_expansion_width_parse_to_the_same_spec(token):
    for spec in SAMPLED:
        text = respelt(format_spec(spec), token)
        assert parse_spec(text) == spec and format_spec(parse_spec(text)) == format_spec(spec)


SPEC_STRING = re.compile(r"r\d+_i\d+_n\d+\|[A-Za-z0-9_.|-]+")
RESULTS = Path(__file__).resolve().parents[2] / "results"


def test_spec_strings_in_committed_results_still_parse():
    """Reference figures and run folders written with earlier spellings stay readable."""
    files = [p for p in RESULTS.rglob("*") if p.suffix in (".csv", ".json", ".md", ".txt", ".log")
             and "runs" not in p.relative_to(RESULTS).parts]
    found = {m.group(0) for p in files for m in SPEC_STRING.finditer(p.read_text(errors="replace"))}
    assert len(found) > 100
    for text in found:
        assert format_spec(parse_spec(text)) == respelt(text, "h"), text


def test_canonical_respells_an_older_string_as_written_now():
    for spec in SAMPLED[:50]:
        assert canonical(respelt(format_spec(spec), "e")) == format_spec(spec)
