"""NetAdapt's calibration of a table towards the start model: a no-op when the table already
holds the four specs, whichever spelling of the spec string it recorded them in."""
import re

import pandas as pd

from latency.table import CALIBRATION_COLUMNS, CALIBRATION_FILE
from netadapt.job import calibrate_for
from search_spaces.encoding import format_spec
from search_spaces.reference import reference_spec
from search_spaces.spec import scale_width


def test_specs_already_calibrated_in_an_older_spelling_are_not_measured_again(tmp_path):
    spec = reference_spec("mobilenetv3-small", resolution=32, num_classes=10, in_channels=1)
    floor = scale_width(spec, 0.25)
    specs = [spec, scale_width(spec, 0.75), scale_width(spec, 0.5), floor]
    old = [re.sub(r"(ir_k\d+_s\d+_)[eh](\d+)", r"\g<1>e\2", format_spec(s)) for s in specs]
    rows = [{"resolution": 32, "spec": text, "measured_ms": 1.0, "raw_ms": 1.0, "ref_ratio": 1.0, "rounds": 2,
             "baseline_ms": 1.0} for text in old]
    pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS)).to_csv(tmp_path / CALIBRATION_FILE, index=False)
    said = []
    calibrate_for(tmp_path, spec, floor, said.append)   # no manifest here: measuring would fail
    assert said == []
