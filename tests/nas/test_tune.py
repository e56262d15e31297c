"""The search on Ray Tune: real trials (tiny proxy budget), ASHA, joining a running cluster,
and that every Ray process started is gone afterwards."""
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nas.evaluator import ProxyEvaluator
from nas.registry import make_strategy
from nas.search import SearchConfig, SearchDriver
from nas.trial_log import TrialLog
from search_spaces.counting import spec_cost
from search_spaces.mnasnet_space import MnasNetSpace
from storage.processes import end_processes_using, processes_using
from training.datasets import load_dataset

pytestmark = [pytest.mark.slow, pytest.mark.ray]
RAY = str(Path(sys.executable).parent / "ray")


def predict_ms(spec):
    return spec_cost(spec).madds / 1e7


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", resolution=32)


def driver_for(folder, data, **config):
    config = SearchConfig(target_ms=1.0, data="digits", strategy="random", train_subset=128, **config)
    space = MnasNetSpace(resolution=32, in_channels=data.in_channels, num_classes=data.num_classes)
    return SearchDriver(folder, config, space, make_strategy(config.strategy, space, seed=0), predict_ms)


def test_tune_runs_the_budget_in_parallel_inside_the_run_folder_and_ends_its_processes(tmp_path, digits):
    from nas.tune import ray_cluster, run_tune

    folder = tmp_path / ("a-long-run-folder-name-" * 3)  # forces the short symlink for Ray's sockets
    folder.mkdir()
    driver = driver_for(folder, digits, trials=4, concurrency=2)
    with ray_cluster(folder, num_cpus=2) as cluster:
        assert cluster.temp_link is not None and Path(cluster.temp_link).resolve() == folder.resolve() / "ray_tmp"
        run_tune(driver, ProxyEvaluator.from_config(driver.config, digits), cluster, name="tune-0")
    frame = TrialLog(folder).frame()
    assert len(frame) == 4 and frame["proposal_id"].is_unique and (frame["status"] == "finished").all()
    assert (frame["top1"] > 0).all() and (frame["top1_stderr"] > 0).all()
    assert any((folder / "ray_tmp").glob("session_*")), "Ray's temp folder is inside the run folder"
    assert (folder / "ray_results" / "tune-0").is_dir()
    assert not processes_using(folder.resolve() / "ray_tmp") and not processes_using(cluster.temp_link)
    assert not Path(cluster.temp_link).exists()


def test_asha_stops_weak_trials_early_and_the_driver_logs_them(tmp_path, digits):
    from nas.tune import ray_cluster, run_tune

    driver = driver_for(tmp_path, digits, trials=6, concurrency=1, epochs=3, asha=True)
    with ray_cluster(tmp_path, num_cpus=1) as cluster:
        run_tune(driver, ProxyEvaluator.from_config(driver.config, digits), cluster, name="tune-0")
    frame = TrialLog(tmp_path).frame()
    assert len(frame) == 6 and set(frame["status"]) <= {"finished", "pruned"}
    assert (frame.loc[frame["status"] == "finished", "epochs"] == 3).all()
    stopped = frame[frame["status"] == "pruned"]
    assert len(stopped) >= 1 and (stopped["epochs"] < 3).all()   # sequential trials: a fixed order of rewards


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_address_joins_a_running_cluster_and_leaves_it_running(tmp_path, digits):
    """A cluster from ``ray start --head``; ended afterwards by the ids of its own processes
    (``ray stop`` would stop every Ray cluster of this user on the machine, others' too)."""
    from nas.tune import ray_cluster, run_tune

    temp = Path(tempfile.mkdtemp(prefix="mnas-head-", dir="/tmp"))
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--num-cpus=2", f"--temp-dir={temp}",
                        "--include-dashboard=false", "--disable-usage-stats"], check=True, env=env,
                       capture_output=True, timeout=120)
        driver = driver_for(tmp_path, digits, trials=2, concurrency=2)
        with ray_cluster(tmp_path, num_cpus=2, address=f"127.0.0.1:{port}") as cluster:
            assert cluster.address == f"127.0.0.1:{port}" and cluster.temp_dir is None
            run_tune(driver, ProxyEvaluator.from_config(driver.config, digits), cluster, name="tune-0")
        assert len(TrialLog(tmp_path).frame()) == 2
        assert processes_using(temp), "the joined cluster is not ours to stop"
        assert not (tmp_path / "ray_tmp").exists()
    finally:
        end_processes_using([temp], grace_s=0.0)
        subprocess.run(["rm", "-rf", str(temp)], check=False)
    assert not processes_using(temp)
