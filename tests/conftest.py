"""Fixtures for every test."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def mobilenas_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$MOBILENAS_CACHE``, the folder the code caches in (reference models of
    ``latency.endtoend``, generated data sets of ``training.variations``; default
    ``~/.cache/mobilenas``), points into a temporary folder, so tests write nothing to the home.
    Subprocesses started by tests inherit it."""
    folder = tmp_path_factory.mktemp("mobilenas-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOBILENAS_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session", autouse=True)
def mobilenas_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$MOBILENAS_HOME`` (saved platforms, ``latency.platforms``; default ``~/.mobilenas``)
    points into a temporary folder, so tests never read or write the user's platforms.
    A test that saves platforms should point it at its own ``tmp_path`` (monkeypatch.setenv)."""
    folder = tmp_path_factory.mktemp("mobilenas-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOBILENAS_HOME", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def fresh_signatures() -> None:
    """Every test's first opening of a table measures its own drift probe: a signature kept for
    reuse (``latency.drift.SIGNATURE_REUSE_S``) never carries from one test to the next."""
    from latency.drift import forget_signatures

    forget_signatures()
