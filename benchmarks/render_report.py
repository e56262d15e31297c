"""Render a run's ``report.html`` in headless Chromium (Debian's ``chromium`` package) and save
a screenshot, to check that the self-contained report displays offline (no network: Chromium
is started with networking disabled by a proxy that does not exist).

    .venv/bin/python benchmarks/render_report.py RUN_DIR results/reference/report_screenshot.png
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def render(report: Path, png: Path, *, width: int = 1280, height: int = 3200) -> Path:
    """Screenshot ``report`` with headless Chromium; raises when Chromium is absent or fails."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                        "--proxy-server=127.0.0.1:9", "--hide-scrollbars", f"--window-size={width},{height}",
                        f"--screenshot={png.resolve()}", report.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    if not png.is_file() or png.stat().st_size < 10_000:
        raise RuntimeError(f"chromium wrote no usable screenshot at {png}")
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("png", type=Path)
    args = parser.parse_args()
    print(render(args.run_dir / "report.html", args.png))


if __name__ == "__main__":
    main()
