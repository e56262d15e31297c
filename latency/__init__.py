"""How fast: paired timing, measurers, layer keys, lookup tables, calibration, hardware check, validation.

Entry points:
- ``latency.paired.measure_paired(...)`` / ``latency.endtoend.measure_specs(measurer, specs, reference)``:
  the measurement primitive, a model's ratio to a reference timed alongside (with its interval);
- ``latency.drift.open_table(folder)``: a table checked against this hardware (fingerprint and a
  signature of paired probe ratios; another speed is recorded as a factor, never refused) and a
  ``DriftReport``;
- ``latency.lazy.LazyPredictor(folder).predict_ms(spec)``: prediction in the table's units that
  measures missing layers first; ``.measure_ms(specs)``: whole models measured in those units;
  ``latency.lazy.ensure_table(folder, space=..., resolution=...)``: build a lazy table or reuse one;
- ``latency.build.TableBuilder``: build a table for a space (``measure_keys(space_keys(space))``)
  or lazily (``ensure_specs(specs)``), resumable; ``finish()`` fits the calibration;
- ``latency.predictor.LatencyPredictor(table).predict_ms(spec)``;
- ``latency.validation.validate(...)``: predicted vs measured over sampled specs;
- ``latency.doctor.run_doctor()``: how far this machine's timing can be trusted;
- ``latency.noise.LoadInjector``: a quiet machine made noisy, for tests and benchmarks.
- ``latency.predictors``: one protocol for the table sum, the calibrated table and the learned
  predictor (``best_predictor(table)``); ``latency.learning.fit_table(folder, sampling=...)``
  measures whole models where the predictor is least sure and writes ``predictor.json``.
"""
