"""One ``search`` job end to end: run folder, data, latency table, strategy, Ray Tune trials,
result files (MnasNet section 4's search loop as a resumable job).

``SearchJob(config, ...).run()`` creates (or, given ``folder``, resumes) the run folder,
records the resolved settings, the machine fingerprint, the latency table with its drift
probe and validation figures, the evaluator (proxy training or a trained supernet), runs the remaining trial budget on Ray Tune and writes the
result files. Messages go to the ``say`` callback and progress to ``progress``: this layer
prints nothing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from latency.fingerprint import device_fingerprint
from latency.platforms import Platform, file_table, resolve_table, table_key
from nas.evaluator import Evaluator, make_evaluator
from nas.pricing import PricedShape, open_pricing, prepare_table, price_function
from nas.registry import make_strategy
from nas.report import write_outputs
from nas.search import ProgressInfo, SearchConfig, SearchDriver
from search_spaces.registry import make_space
from storage.runfolder import RunFolder
from storage.status import Status
from training.datasets import Dataset, default_resolution, load_dataset


def load_search_data(config: SearchConfig) -> Dataset:
    """The data set at the configured (or the data set's default) resolution; fixed split seed 0."""
    resolution = config.resolution if config.resolution is not None else default_resolution(config.data)
    return load_dataset(config.data, resolution=resolution, split_seed=0)


def priced_shape(config: SearchConfig, data: Dataset) -> PricedShape:
    """What the table prices: the trained shape unless ``price_*`` set a deployment shape."""
    pick = lambda priced, trained: trained if priced is None else priced  # noqa: E731
    return PricedShape(pick(config.price_resolution, data.resolution), pick(config.price_in_channels, data.in_channels),
                       pick(config.price_classes, data.num_classes))


class SearchJob:
    """See the module docstring."""

    def __init__(self, config: SearchConfig, *, out: Path, table: str | None = None, on_drift: str | None = None,
                 table_trusted: bool | None = None, address: str | None = None, folder: RunFolder | None = None,
                 say: Callable[[str], None] = lambda message: None,
                 progress: Callable[[ProgressInfo], None] = lambda info: None) -> None:
        self.config, self.out, self.table, self.on_drift = config, Path(out), table, on_drift or "error"
        self.given_on_drift = on_drift  # None: a new run refuses other hardware, a resumed one keeps its choice
        self.table_trusted = table is None if table_trusted is None else table_trusted  # made by this machine's runs
        self.address = address
        self.folder = folder
        self.say, self.progress = say, progress
        self.platform = None if config.platform is None else Platform.from_record(config.platform)

    def _key(self, shape: PricedShape) -> str:
        return table_key(self.config.space, shape.resolution, shape.in_channels, shape.num_classes)

    def run(self) -> dict[str, Any]:
        """Run (or continue) the search; returns the summary of ``nas.report``."""
        data = load_search_data(self.config)
        shape = priced_shape(self.config, data)
        evaluator = make_evaluator(self.config, data)  # a bad --supernet fails before any folder exists
        resumed = self.folder is not None
        if self.folder is None and self.platform is not None:  # a given table checked, else the platform's own
            filed = resolve_table(self.platform, self.table, self._key(shape))
            if self.table is None and filed is not None:  # opened through the drift check like a given table
                self.table, self.table_trusted = filed, False
        if self.folder is None:
            self.folder = RunFolder.create(self.out, job="search", slug=f"search-{self.config.strategy}",
                                           seed=self.config.seed, config=self.config.to_dict(),
                                           extra={"request": {"table": self.table, "on_drift": self.on_drift,
                                                                  "table_trusted": self.table_trusted}})
            self.say(f"run folder {self.folder.path}")
        if resumed:
            self._restore_request()
        table = self.table
        with self.folder.session() as stop:
            driver = self._driver(data, shape, table, resumed)
            self.folder.update(evaluator=evaluator.describe())
            self._run_trials(driver, evaluator, stop)
            result = write_outputs(driver, self.folder.path)
            if driver.finished:
                self.folder.set_status(Status.FINISHED, summary=result)
        return result

    def _restore_request(self) -> None:
        """A resumed run's table and drift policy, as it started; ``on_drift`` given now wins."""
        request = self.folder.manifest.get("request", {})
        self.table, self.on_drift = request.get("table"), request.get("on_drift", "error")
        if self.given_on_drift is not None and self.given_on_drift != self.on_drift:
            self.say(f"resuming with on_drift={self.given_on_drift} (recorded: {self.on_drift})")
            self.on_drift = self.given_on_drift
        self.table_trusted = request.get("table_trusted", self.table is None)

    def _driver(self, data: Dataset, shape: PricedShape, table: str | None, resumed: bool) -> SearchDriver:
        folder = self.folder.path
        measurer = None if self.platform is None else self.platform.make_measurer()
        table_folder, message = prepare_table(folder, self.out, shape, self.config.space, table, measurer)
        self.say(message)
        if self.platform is not None and table is None:
            self.say(file_table(self.platform, self._key(shape), table_folder))
        predictor, record = open_pricing(table_folder, on_drift=self.on_drift, trusted=self.table_trusted)
        self.say(f"latency table: {record['entries']} layers; drift probe: {predictor.drift.describe()}")
        space = make_space(self.config.space, resolution=data.resolution, num_classes=data.num_classes,
                           in_channels=data.in_channels)
        strategy = make_strategy(self.config.strategy, space, seed=self.config.seed, config=self.config.strategy_config)
        price = price_function(predictor, self.config.price_by, self.config.measure_like, self.config.measure_like_ms)
        driver = SearchDriver(folder, self.config, space, strategy, price, on_progress=self.progress)
        if resumed:
            counts = driver.resume()
            self.say(f"resumed: {counts['logged']} trials kept, {counts['retold']} re-told to the strategy, "
                     f"{counts['rerun']} in flight at the stop run again")
        self.folder.update(latency={**record, "message": message, "priced_shape": shape.to_dict(),
                                    "pricing": "as trained" if shape.to_dict() == _trained(data) else "deployment shape"},
                           data={"name": data.name, **_trained(data), "n_train": len(data.y_train),
                                 "n_val": len(data.y_val)},
                           fingerprint=device_fingerprint())
        return driver

    def _run_trials(self, driver: SearchDriver, evaluator: Evaluator, stop: Callable[[], bool]) -> None:
        from nas.tune import ray_cluster, run_tune  # ray is imported only where trials run

        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C reaches the run folder's stop flag
        cpus = self.config.concurrency * self.config.cpus_per_trial
        start = time.perf_counter()
        with ray_cluster(self.folder.path, num_cpus=cpus, address=self.address) as cluster:
            resumes = int(self.folder.manifest.get("resumes", 0))
            ray_record = {**cluster.to_dict(), "num_cpus": cpus, "started_s": round(time.perf_counter() - start, 2)}
            self.folder.update(ray=ray_record)
            tune_start = time.perf_counter()
            run_tune(driver, evaluator, cluster, name=f"tune-{resumes}", should_stop=stop)
            ray_record["tune_wall_s"] = round(time.perf_counter() - tune_start, 2)
            ray_record["latency_predict_s"] = round(driver.predict_s, 2)
            ray_record["trials_this_session"] = driver.session_done
            ray_record["trial_train_s_this_session"] = round(sum(r.wall_s for r in driver.records[-driver.session_done:])
                                                             if driver.session_done else 0.0, 2)
        ray_record["total_wall_s"] = round(time.perf_counter() - start, 2)
        self.folder.update(ray=ray_record, sessions=[*self.folder.manifest.get("sessions", []), ray_record])


def _trained(data: Dataset) -> dict[str, int]:
    return {"resolution": data.resolution, "in_channels": data.in_channels, "num_classes": data.num_classes}
