"""Progress on stderr: off a terminal one plain line per update with every figure and tqdm's
ETA; NetAdapt counts milliseconds cut, so its ETA is the remaining cut at the session's rate."""
import math

from mobilenas.cli_netadapt import Progress
from mobilenas.cli_search import ProgressLine
from mobilenas.progress import ProgressBar
from nas.search import ProgressInfo
from netadapt.loop import LoopEvent


def test_search_lines_keep_best_reward_accuracy_latency_and_eta(capsys):
    line = ProgressLine()
    line(ProgressInfo(6, 10, math.nan, math.nan, math.nan, 30.0, math.nan))   # resumed after 5 trials
    line(ProgressInfo(7, 10, 0.61234, 0.875, 0.1234, 60.0, math.nan))
    line.close()
    first, second = capsys.readouterr().err.splitlines()
    assert first == "search: 6/10 trials | best reward - | elapsed 00:30 | ETA 02:00"
    assert second == "search: 7/10 trials | best reward 0.6123 (top-1 87.5%, 0.123 ms) | elapsed 01:00 | ETA 01:30"


def test_netadapt_eta_is_the_remaining_cut_at_this_sessions_rate(capsys, monkeypatch):
    clock = iter([0.0, 100.0, 110.0, 120.0])   # made; first proposals; two iterations
    monkeypatch.setattr("mobilenas.progress.time.monotonic", lambda: next(clock))
    progress = Progress()
    event = dict(target_ms=1.0, l0_ms=2.0, top1=0.9, elapsed_s=0.0, best_label="block3", iteration_s=10.0)
    progress(LoopEvent("proposals", 3, 1.75, **event, proposals=4))   # resumed at 1.75 ms
    progress(LoopEvent("iteration", 4, 1.5, **event))    # 0.25 ms cut in 10 s, 0.5 ms to go
    progress(LoopEvent("iteration", 5, 1.25, **event))   # 0.5 ms cut in 20 s, 0.25 ms to go
    progress(LoopEvent("done", 5, 1.25, **event))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "mobilenas netadapt: iteration 4: fine-tuning 4 proposals"
    assert lines[1].startswith("mobilenas netadapt: iteration 4: 1.5000 ms (target 1.0000, start 2.0000) | kept block3")
    assert lines[1].endswith("elapsed 00:10 | ETA 00:20") and lines[2].endswith("elapsed 00:20 | ETA 00:10")
    assert lines[3] == "mobilenas netadapt: done: 1.2500 ms predicted, val top-1 0.9000"


def test_a_terminal_gets_one_bar_rewritten_in_place(capsys):
    bar = ProgressBar(tty=True)
    bar.update(1, 4, "search: 1/4 trials")
    bar.update(2, 4, "search: 2/4 trials")
    bar.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\r" in err and "search: 2/4 trials" in err
