"""How fast: latency measurers, block keys, lookup tables, calibration, validation."""
