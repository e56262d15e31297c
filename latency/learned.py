"""A learned whole-model latency predictor, stored as JSON (no pickle) in the table folder.

The model learns the *residual* of the calibrated table prediction in log space,
``log(measured_ms / calibrated_ms)``, from whole models measured in the table's units
(paired ratios to its reference times its baseline, :mod:`latency.endtoend`), over the
features of :mod:`latency.features`. A residual in log space keeps the prediction positive
and falls back to the calibration where the model has learned nothing. As in nn-Meter
(MobiSys 2021) and LitePred (NSDI 2024), tree ensembles are compared with an MLP; here
gradient-boosted trees, a random forest and a small MLP (scikit-learn), by cross-validation.

``predictor.json`` (schema :data:`SCHEMA_VERSION`) holds the model in plain arrays: for trees,
every tree's ``children_left``/``children_right``/``feature``/``threshold``/``value`` (as in
``sklearn.tree._tree.Tree``) with the ensemble's ``init`` and ``scale`` (GBT: the learning
rate; RF: 1/n_trees); for the MLP the input and target scaling, weights and biases (ReLU). It records
the feature names and version, the table it belongs to (reference spec, baseline, fingerprint
hash), the SHA-256 of ``measurements.csv`` it was fitted on, the training range (specs
outside it fall back to the calibrated table) and the cross-validated figures.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from latency.features import FEATURE_NAMES, FEATURES_VERSION
from storage.statefiles import StateFileError, check_fields, read_json, write_json

SCHEMA_VERSION = 1
PREDICTOR_FILE = "predictor.json"
CANDIDATE_FILE = "predictor-candidate.json"
"""A fitted model that did not beat the calibrated table in cross-validation (never used)."""
KIND = "mobilenas-learned-latency"
MODEL_TYPES = ("gbt", "rf", "mlp")
SMALL_BATCH = 16
"""Up to this many rows, trees are walked in plain Python (a search predicts one spec at a time)."""
RANGE_FEATURES = ("calibrated_ms", "sum_ms", "params_m", "madds_m", "n_layers")
"""Features whose training range a spec must fall in for the learned model to be used."""
EXACT_FEATURES = ("resolution", "in_channels", "num_classes")
"""Features a spec must share with some training spec (no extrapolation to another input)."""
FIELDS = {"schema_version": int, "kind": str, "model_type": str, "features_version": int, "feature_names": list,
          "target": str, "model": dict, "table": dict, "measurements": dict, "range": dict}


def table_identity(manifest: dict) -> dict[str, Any]:
    """What ties a model to its table: reference spec, baseline and a hash of the fingerprint."""
    fingerprint = json.dumps(manifest.get("fingerprint", {}), sort_keys=True).encode()
    return {"reference_spec": manifest["reference"]["spec"], "baseline_ms": manifest["reference"]["baseline_ms"],
            "fingerprint_sha256": hashlib.sha256(fingerprint).hexdigest()}


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- serialisation of fitted models
def dump_tree(tree: Any) -> dict[str, list]:
    """A fitted ``sklearn`` tree (``estimator.tree_``) as plain lists (regression, one output)."""
    return {"children_left": tree.children_left.tolist(), "children_right": tree.children_right.tolist(),
            "feature": tree.feature.tolist(), "threshold": tree.threshold.tolist(),
            "value": tree.value[:, 0, 0].tolist()}


def dump_estimator(model_type: str, estimator: Any, x: np.ndarray) -> dict[str, Any]:
    """JSON-safe dict of a fitted GBT / RF / MLP pipeline (see the module docstring)."""
    if model_type == "rf":
        trees = [dump_tree(e.tree_) for e in estimator.estimators_]
        return {"trees": trees, "init": 0.0, "scale": 1.0 / len(trees)}
    if model_type == "gbt":
        trees = [dump_tree(e.tree_) for e in estimator.estimators_[:, 0]]
        dumped = {"trees": trees, "init": 0.0, "scale": float(estimator.learning_rate)}
        # the initial estimator is a constant; read it off one prediction so any loss is exact
        dumped["init"] = float(estimator.predict(x[:1])[0] - TreeEnsemble.from_dict(dumped).raw(x[:1])[0])
        return dumped
    if model_type == "mlp":
        network, target = estimator.regressor_, estimator.transformer_
        scaler, mlp = network.named_steps["scale"], network.named_steps["mlp"]
        return {"mean": scaler.mean_.tolist(), "std": scaler.scale_.tolist(), "y_mean": float(target.mean_[0]),
                "y_std": float(target.scale_[0]),
                "weights": [w.tolist() for w in mlp.coefs_], "biases": [b.tolist() for b in mlp.intercepts_],
                "activation": mlp.activation}
    raise ValueError(f"model_type {model_type!r} is not known; expected one of {MODEL_TYPES}")


@dataclass(frozen=True)
class TreeEnsemble:
    """``init + scale * sum(tree(x))`` over flat array trees (GBT and RF alike)."""

    trees: tuple[tuple[np.ndarray, ...], ...]
    init: float
    scale: float
    _lists: list | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict) -> "TreeEnsemble":
        trees = tuple((np.asarray(t["children_left"], dtype=np.int64), np.asarray(t["children_right"], dtype=np.int64),
                       np.asarray(t["feature"], dtype=np.int64), np.asarray(t["threshold"], dtype=float),
                       np.asarray(t["value"], dtype=float)) for t in data["trees"])
        return cls(trees, float(data["init"]), float(data["scale"]))

    def per_tree(self, x: np.ndarray) -> np.ndarray:
        """``n_samples x n_trees`` leaf values (the spread of a forest's trees is its uncertainty)."""
        if len(x) <= SMALL_BATCH:
            return np.array([self._walk(row) for row in np.asarray(x, dtype=float).tolist()]).reshape(len(x), -1)
        out = np.empty((len(x), len(self.trees)))
        for j, (left, right, feature, threshold, value) in enumerate(self.trees):
            node = np.zeros(len(x), dtype=np.int64)
            active = left[node] >= 0
            while active.any():
                rows = np.flatnonzero(active)
                n = node[rows]
                go_left = x[rows, feature[n]] <= threshold[n]
                node[rows] = np.where(go_left, left[n], right[n])
                active = left[node] >= 0
            out[:, j] = value[node]
        return out

    def _walk(self, row: list[float]) -> list[float]:
        """Leaf values of one row, in plain Python (faster than numpy for a single spec)."""
        if self._lists is None:
            object.__setattr__(self, "_lists", [tuple(a.tolist() for a in tree) for tree in self.trees])
        leaves = []
        for left, right, feature, threshold, value in self._lists:
            node = 0
            while left[node] >= 0:
                node = left[node] if row[feature[node]] <= threshold[node] else right[node]
            leaves.append(value[node])
        return leaves

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.init + self.scale * self.per_tree(x).sum(axis=1)


@dataclass(frozen=True)
class SmallMlp:
    """Standardised inputs, ReLU hidden layers, one linear output (sklearn ``MLPRegressor``)."""

    mean: np.ndarray
    std: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    y_mean: float = 0.0
    y_std: float = 1.0

    @classmethod
    def from_dict(cls, data: dict) -> "SmallMlp":
        if data.get("activation") != "relu":
            raise ValueError(f"activation {data.get('activation')!r} is not supported; expected 'relu'")
        return cls(np.asarray(data["mean"], float), np.asarray(data["std"], float),
                   tuple(np.asarray(w, float) for w in data["weights"]), tuple(np.asarray(b, float) for b in data["biases"]),
                   float(data["y_mean"]), float(data["y_std"]))

    def raw(self, x: np.ndarray) -> np.ndarray:
        h = (x - self.mean) / self.std
        for index, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if index < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return self.y_mean + self.y_std * h[:, 0]


def model_from_dict(model_type: str, data: dict) -> TreeEnsemble | SmallMlp:
    return SmallMlp.from_dict(data) if model_type == "mlp" else TreeEnsemble.from_dict(data)


# ---------------------------------------------------------------- the stored predictor
@dataclass
class LearnedModel:
    """A loaded ``predictor.json``: ``predict_ms(features, calibrated_ms)`` and its range."""

    document: dict
    model: TreeEnsemble | SmallMlp

    @property
    def model_type(self) -> str:
        return str(self.document["model_type"])

    def in_range(self, x: np.ndarray) -> np.ndarray:
        """Per row: inside the training range of :data:`RANGE_FEATURES` and sharing an input shape."""
        ok = np.ones(len(x), dtype=bool)
        for name, (low, high) in self.document["range"]["bounds"].items():
            column = x[:, FEATURE_NAMES.index(name)]
            ok &= (column >= low) & (column <= high)
        shapes = {tuple(s) for s in self.document["range"]["shapes"]}
        columns = [FEATURE_NAMES.index(n) for n in EXACT_FEATURES]
        ok &= np.array([tuple(row) in shapes for row in x[:, columns].tolist()], dtype=bool)
        return ok

    def predict_ms(self, x: np.ndarray) -> np.ndarray:
        """Latency (table units) of feature rows ``x``: calibrated x exp(learned residual)."""
        calibrated = x[:, FEATURE_NAMES.index("calibrated_ms")]
        return calibrated * np.exp(self.model.raw(x))


def training_range(x: np.ndarray) -> dict[str, Any]:
    bounds = {name: [float(x[:, FEATURE_NAMES.index(name)].min()), float(x[:, FEATURE_NAMES.index(name)].max())]
              for name in RANGE_FEATURES}
    columns = [FEATURE_NAMES.index(n) for n in EXACT_FEATURES]
    shapes = sorted({tuple(float(v) for v in row) for row in x[:, columns].tolist()})
    return {"bounds": bounds, "shapes": [list(s) for s in shapes]}


def make_document(model_type: str, dumped: dict, x: np.ndarray, manifest: dict, measurements_path: Path,
                  n_measurements: int, extra: dict) -> dict[str, Any]:
    """The content of ``predictor.json`` (see the module docstring)."""
    return {"schema_version": SCHEMA_VERSION, "kind": KIND, "model_type": model_type,
            "features_version": FEATURES_VERSION, "feature_names": list(FEATURE_NAMES),
            "target": "log(measured_ms / calibrated_ms)", "model": dumped, "table": table_identity(manifest),
            "measurements": {"file": measurements_path.name, "sha256": file_sha256(measurements_path),
                             "rows": int(n_measurements)},
            "range": training_range(x), "fitted_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}


def save_model(folder: str | Path, document: dict, name: str = PREDICTOR_FILE) -> Path:
    path = Path(folder) / name
    write_json(path, document)
    return path


def load_model(folder: str | Path, manifest: dict) -> LearnedModel | None:
    """The learned model in ``folder`` (None when it holds none).

    Raises:
        StateFileError: one line naming the file and the field when the file is corrupt, of
            another schema or feature set, or was fitted for another table.
    """
    path = Path(folder) / PREDICTOR_FILE
    if not path.exists():
        return None
    document = read_json(path, fields=FIELDS, schema_version=SCHEMA_VERSION, what="learned latency predictor")
    _check_document(document, manifest, path)
    try:
        model = model_from_dict(document["model_type"], document["model"])
        probe = np.zeros((1, len(FEATURE_NAMES)))
        if not np.all(np.isfinite(model.raw(probe))):
            raise ValueError("it predicts a non-finite value")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateFileError(f"{path}: field 'model' is not a usable {document['model_type']} model ({exc})") from None
    return LearnedModel(document, model)


def _check_document(document: dict, manifest: dict, path: Path) -> None:
    if document["kind"] != KIND:
        raise StateFileError(f"{path}: field 'kind' is {document['kind']!r}; expected {KIND!r}")
    if document["model_type"] not in MODEL_TYPES:
        raise StateFileError(f"{path}: field 'model_type' is {document['model_type']!r}; expected one of {MODEL_TYPES}")
    if document["features_version"] != FEATURES_VERSION or tuple(document["feature_names"]) != FEATURE_NAMES:
        raise StateFileError(f"{path}: field 'feature_names' (version {document['features_version']!r}) is not this "
                             f"version's feature set (version {FEATURES_VERSION}); refit with `mobilenas latency fit`")
    check_fields(document["range"], {"bounds": dict, "shapes": list}, f"{path}: range")
    expected = table_identity(manifest)
    for field, value in expected.items():
        if document["table"].get(field) != value:
            raise StateFileError(f"{path}: field 'table.{field}' is {document['table'].get(field)!r}, but this table's is "
                                 f"{value!r}: the predictor was fitted for another table")


def describe(document: dict) -> str:
    cv = document.get("cross_validation", {}).get(document["model_type"], {})
    figures = (f", cross-validated within 5%: {cv['within_5pct']:.0%}, within 10%: {cv['within_10pct']:.0%}"
               if cv else "")
    return f"learned {document['model_type']} on {document['measurements']['rows']} measured models{figures}"


def residual_targets(measured_ms: Sequence[float], calibrated_ms: Sequence[float]) -> np.ndarray:
    return np.log(np.asarray(measured_ms, float) / np.asarray(calibrated_ms, float))
