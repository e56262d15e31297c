"""Importing mobilenas makes OpenMP's waiting threads sleep unless the user chose otherwise."""
from __future__ import annotations

import os
import subprocess
import sys

SHOW = "import mobilenas, os; print(os.environ['OMP_WAIT_POLICY'])"


def _policy_seen(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def test_passive_by_default():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_seen(env) == "PASSIVE"


def test_a_policy_the_user_set_is_kept():
    assert _policy_seen({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
