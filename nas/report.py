"""A search's result files: ``best.json`` (the best-reward spec as versioned spec JSON, which
every command accepts as SPEC), ``best.md`` (the paper's table plus its figures),
``pareto.csv``/``pareto.png`` and ``summary.json`` (MnasNet section 5: the found model and
the accuracy-latency trade-off of everything sampled)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nas.pareto import write_pareto
from nas.search import SearchDriver
from nas.trial_log import TrialRecord
from search_spaces.encoding import parse_spec, spec_to_json
from search_spaces.paper_table import render_markdown
from storage.statefiles import write_json, write_text_atomic

BEST_JSON = "best.json"
BEST_MD = "best.md"
SUMMARY_JSON = "summary.json"


def summary(driver: SearchDriver, folder: Path) -> dict[str, Any]:
    """The figures ``--json`` prints and ``summary.json`` holds."""
    best = driver.best()
    records = driver.records
    statuses = {s: sum(r.status == s for r in records) for s in sorted({r.status for r in records})}
    wall = sum(r.wall_s for r in records if math.isfinite(r.wall_s))
    return {"run_dir": str(folder), "trials": len(records), "budget": driver.config.trials, "statuses": statuses,
            "target_ms": driver.config.target_ms, "reward": driver.reward.to_dict(),
            "best_trial": best.trial if best else None, "best_spec": best.spec if best else None,
            "best_reward": best.reward if best else None, "best_top1": best.top1 if best else None,
            "best_top1_stderr": best.top1_stderr if best else None,
            "best_latency_ms": best.latency_ms if best else None, "trial_train_s": round(wall, 2)}


def write_outputs(driver: SearchDriver, folder: str | Path) -> dict[str, Any]:
    """Write the result files from the driver's logged trials; returns the summary."""
    folder = Path(folder)
    best = driver.best()
    write_pareto(folder, driver.log.frame(), target_ms=driver.config.target_ms,
                 best_trial=best.trial if best else None)
    if best is not None:
        write_text_atomic(folder / BEST_JSON, spec_to_json(parse_spec(best.spec)) + "\n")
        write_text_atomic(folder / BEST_MD, best_markdown(best, driver.config.target_ms))
    result = summary(driver, folder)
    write_json(folder / SUMMARY_JSON, result)
    return result


def best_markdown(best: TrialRecord, target_ms: float) -> str:
    """The best spec as the MobileNetV3 paper's table, with reward, accuracy and latency."""
    spec = parse_spec(best.spec)
    lines = [f"# Best of the search: trial {best.trial}", "",
             f"- reward {best.reward:.4f}; proxy validation top-1 {100 * best.top1:.2f}% "
             f"(+/- {100 * best.top1_stderr:.2f} stderr); predicted latency {best.latency_ms:.4f} ms "
             f"(target {target_ms:g} ms)",
             f"- spec: `{best.spec}`", "", render_markdown(spec)]
    return "\n".join(lines) + "\n"
