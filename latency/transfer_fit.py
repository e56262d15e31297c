"""Fit, store and apply a predictor transfer to a named platform (``mobilenas latency transfer``).

The source table's best predictor prices ``n`` seeded specs of its space (disjoint from every
spec it was fitted or calibrated on); each is measured on the target platform, paired with
MobileNetV3-Small on that platform (pairs added to +/- 1.5%), and appended to
``measurements.csv`` as it is made, so a kill loses at most the one in flight and the same
command resumes. :func:`latency.transfer.choose_transfer` then maps the source figures to the
target's ratios; ``transfer.json`` holds the map, the source table's identity, the platform's
record and the reference's speed over the session (ratio x that speed = ms on the target).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from latency.endtoend import measure_specs
from latency.lazy import LazyPredictor
from latency.learned import file_sha256, table_identity
from latency.learning import candidate_pool
from latency.paired import WHOLE_MODEL_PRECISION
from latency.platforms import Platform
from latency.table import TableMismatchError
from latency.transfer import Transfer, choose_transfer, transfer_features
from search_spaces.encoding import format_spec, parse_spec
from search_spaces.reference import reference_spec
from search_spaces.spec import ArchSpec
from storage.statefiles import CsvLog, write_json

TRANSFER_FILE = "transfer.json"
MEASUREMENTS_FILE = "measurements.csv"
REQUEST_FILE = "request.json"
"""What the folder's measurements are of (source table, platform, seed), written before the first."""
SCHEMA = 1
COLUMNS = ("spec", "source_ms", "ratio", "ratio_low", "ratio_high", "reference_ms", "pairs", "time")


def platform_reference(spec: ArchSpec) -> ArchSpec:
    """MobileNetV3-Small at ``spec``'s input shape and class count: the target's yardstick."""
    return reference_spec("mobilenetv3-small", resolution=spec.resolution, in_channels=spec.in_channels,
                          num_classes=spec.num_classes)


def fit_transfer_to(lazy: LazyPredictor, platform: Platform, out: str | Path, *, measurements: int = 30,
                    seed: int = 0, say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Measure (or resume measuring) ``measurements`` specs on ``platform``, fit, write
    ``out/transfer.json``; returns its document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = candidate_pool(lazy.folder, lazy.table.manifest, measurements, seed)[:measurements]
    _check_priced(lazy, specs)
    _check_same_run(out, lazy, platform, seed)
    log = CsvLog(out / MEASUREMENTS_FILE, COLUMNS)
    done = set(log.read()["spec"]) if (out / MEASUREMENTS_FILE).is_file() else set()
    measurer, reference = platform.make_measurer(), platform_reference(specs[0])
    for index, spec in enumerate(specs):
        if format_spec(spec) in done:
            continue
        result = measure_specs(measurer, [spec], reference, passes=2, precision=WHOLE_MODEL_PRECISION)[0]
        log.append([{"spec": format_spec(spec), "source_ms": lazy.predict_many([spec])[0], "ratio": result.ratio,
                     "ratio_low": result.low, "ratio_high": result.high, "reference_ms": result.reference_ms,
                     "pairs": result.pairs, "time": time.time()}])
        say(f"measured {index + 1} of {len(specs)} on {platform.name}: {result.ratio:.3f}x MobileNetV3-Small")
    frame = log.read()
    fitted_specs = [parse_spec(s) for s in frame["spec"]]
    transfer = choose_transfer(frame["source_ms"].to_numpy(float), frame["ratio"].to_numpy(float),
                               transfer_features(lazy.table, fitted_specs))
    document = {"schema": SCHEMA, "source_table": str(lazy.folder), "source": table_identity(lazy.table.manifest),
                "platform": platform.record(), "seed": seed, "reference": format_spec(reference),
                "reference_ms": float(np.median(frame["reference_ms"])), "n": int(len(frame)),
                "units": "ratio to the reference on the platform", "transfer": transfer.to_dict(),
                "measurements_sha256": file_sha256(out / MEASUREMENTS_FILE)}
    write_json(out / TRANSFER_FILE, document)
    return document


def _check_priced(lazy: LazyPredictor, specs: Sequence[ArchSpec]) -> None:
    """Every layer of ``specs`` in the table before anything is measured on the target: this
    machine's table gets the ones it lacks measured now; another machine's table (carried with
    ``--force``, the nearest platform's predictor) cannot, so it must hold them all."""
    missing = lazy.missing_keys(specs)
    if missing and lazy.drift.other_hardware:
        raise TableMismatchError(
            f"table {lazy.folder} was measured on other hardware and lacks {len(missing)} layers of the models to "
            "measure, which this machine cannot add: carry a table that holds every layer of its space (built "
            "without --lazy, or completed with mobilenas latency build on its own machine)")
    lazy.ensure(specs)


def _check_same_run(out: Path, lazy: LazyPredictor, platform: Platform, seed: int) -> None:
    """Resuming into ``out`` needs the same source table, platform and seed, checked against
    :data:`REQUEST_FILE`, written before the first measurement (so a run killed before its
    ``transfer.json`` is checked too)."""
    request = {"source": table_identity(lazy.table.manifest), "platform": platform.record(), "seed": seed}
    path = out / REQUEST_FILE
    if not path.is_file():
        write_json(path, request)
        return
    if json.loads(path.read_text()) != request:
        raise ValueError(f"{out} was fitted from another table, platform or seed: choose another --out")


def load_transfer(folder: str | Path, lazy: LazyPredictor) -> dict[str, Any]:
    """``folder``'s transfer document, checked against the source table ``lazy`` opens."""
    path = Path(folder) / TRANSFER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no {TRANSFER_FILE}; fit one with: mobilenas latency transfer TABLE "
                                "--platform NAME --out DIR")
    try:
        document = json.loads(path.read_text())
        Transfer.from_dict(document["transfer"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a transfer document ({exc})") from None
    if document.get("schema") != SCHEMA:
        raise ValueError(f"{path} has schema {document.get('schema')!r}; this version reads {SCHEMA}")
    if document["source"] != table_identity(lazy.table.manifest):
        raise ValueError(f"{path} was fitted from another table than {lazy.folder}: give the table it names "
                         f"({document.get('source_table')})")
    return document


def predict_on_platform(document: dict[str, Any], lazy: LazyPredictor, specs: Sequence[ArchSpec]) -> list[dict[str, float]]:
    """Each spec's ``ratio`` to the platform's reference and ``latency_ms`` (ratio x the
    reference's speed over the fitting session) on the platform."""
    transfer = Transfer.from_dict(document["transfer"])
    ratios = transfer.predict(lazy.predict_many(specs), transfer_features(lazy.table, specs))
    return [{"ratio": float(r), "latency_ms": float(r) * float(document["reference_ms"])} for r in ratios]
