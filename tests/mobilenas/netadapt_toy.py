"""Runs ``mobilenas netadapt`` with the toy latency predictor of the NetAdapt tests in place of a
latency table (``python -m tests.mobilenas.netadapt_toy ARGS...``), for tests that need a
separate process (SIGKILL) without minutes of table measurement."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import mobilenas.cli_netadapt as cli_netadapt
import netadapt.job as netadapt_job
from mobilenas.cli import main
from tests.netadapt.loop_helpers import toy_predict_ms


def toy_open_predictor(table, spec, on_drift, say, *, create, calibrate=None, trusted=False, measurer=None,
                       space="mnasnet"):
    return SimpleNamespace(predict_ms=toy_predict_ms, predict_many=lambda specs: [toy_predict_ms(s) for s in specs],
                           measure_ms=lambda specs, **_: [toy_predict_ms(s) for s in specs])


def install() -> None:
    cli_netadapt.open_predictor = toy_open_predictor
    netadapt_job.open_predictor = toy_open_predictor


if __name__ == "__main__":
    install()
    sys.exit(main(sys.argv[1:]))
