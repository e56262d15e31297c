"""How fast: latency measurers, layer keys, lookup tables, calibration, drift probe, validation.

Entry points:
- ``latency.drift.open_table(folder, tolerance=0.10, on_drift="error")``: a table checked
  against this machine (fingerprint + a <1 s reference probe) and a ``DriftReport``;
- ``latency.lazy.LazyPredictor(folder).predict_ms(spec)``: prediction that measures missing
  layers first; ``latency.lazy.ensure_table(folder, space=..., resolution=...)``: build a
  lazy table or reuse a matching one;
- ``latency.measurers.measure_model_ms(model_or_onnx, input_shape, OrtSettings())``: ONNX
  Runtime CPU samples (ms) of a whole model;
- ``latency.build.TableBuilder``: build a table for a space (``measure_keys(space_keys(space))``)
  or lazily (``ensure_specs(specs)``), resumable; ``finish()`` fits the calibration;
- ``latency.predictor.LatencyPredictor(table).predict_ms(spec)``;
- ``latency.validation.validate(...)``: predicted vs measured over sampled specs;
- ``latency.predictors``: one protocol for the table sum, the calibrated table and the learned
  predictor (``best_predictor(table)``); ``latency.learning.fit_table(folder, sampling=...)``
  measures whole models where the predictor is least sure and writes ``predictor.json``.
"""
