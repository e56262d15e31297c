"""How fast: latency measurers, layer keys, lookup tables, calibration, validation (issue 4).

Entry points:
- ``latency.measurers.measure_model_ms(model_or_onnx, input_shape, OrtSettings())``: ONNX
  Runtime CPU samples (ms) of a whole model;
- ``latency.build.TableBuilder``: build a table for a space (``measure_keys(space_keys(space))``)
  or lazily (``ensure_specs(specs)``), resumable; ``finish()`` fits the calibration;
- ``latency.predictor.LatencyPredictor.load(folder).predict_ms(spec)``;
- ``latency.validation.validate(...)``: predicted vs measured over sampled specs.
"""
