"""Fixtures for pipeline tests: classifier stand-ins, real models and shared runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline import RunOptions, run_pipeline


class ConstantClassifier:
    """Returns the same probability for every tile."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.calls = 0

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        assert tiles.ndim == 4
        assert tiles.shape[-1] == 3
        assert tiles.dtype == np.uint8
        self.calls += 1
        return np.full(len(tiles), self.probability, dtype=np.float32)


class FakeModels:
    """The ``pipeline.models`` contract with fixed probabilities."""

    def __init__(self, ink: float = 0.9, foreground: float = 0.9) -> None:
        self.ink = ConstantClassifier(ink)
        self.background = ConstantClassifier(foreground)
        self.versions = {"ink": "fake", "background": "fake"}


@pytest.fixture
def fake_models() -> FakeModels:
    return FakeModels()


@pytest.fixture(scope="session")
def real_models():
    """The trained classifiers; skipped while the weights are not in the package."""
    from pipeline.models import WeightsNotFoundError, load_models

    try:
        return load_models("cpu")
    except WeightsNotFoundError as exc:
        pytest.skip(f"trained classifier weights missing ({exc})")


def _run(source: Path, output: Path, models, **options) -> dict:
    return run_pipeline(source, output, models=models, options=RunOptions(**options))


@pytest.fixture(scope="session")
def cmu_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    output = tmp_path_factory.mktemp("cmu-run")
    return _run(shared_data / "slides" / "cmu-1-small-region.svs", output, FakeModels()), output


@pytest.fixture(scope="session")
def lung_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    output = tmp_path_factory.mktemp("lung-run")
    return _run(shared_data / "ink" / "tile-clean-lung.png", output, FakeModels()), output


@pytest.fixture(scope="session")
def green_run(shared_data: Path, real_models,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    output = tmp_path_factory.mktemp("green-run")
    return _run(shared_data / "ink" / "tcga-green-pen.png", output, real_models), output


@pytest.fixture(scope="session")
def green_run_fake(shared_data: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The green-pen run with classifiers that call every screened tile foreground ink."""
    output = tmp_path_factory.mktemp("green-run-fake")
    return _run(shared_data / "ink" / "tcga-green-pen.png", output, FakeModels()), output
