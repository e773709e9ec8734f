"""Tests of the tile classifier, its checkpoints, load_models and the shipped weights."""

from __future__ import annotations

import pickle
from dataclasses import asdict

import numpy as np
import pytest
import torch

from pipeline.models import (
    WEIGHTS_DIR,
    TileClassifier,
    WeightsNotFoundError,
    file_version,
    load_models,
)
from pipeline.models.classifier import (
    InkClassifier,
    InkClassifierConfig,
    count_trainable_parameters,
    load_checkpoint,
    save_checkpoint,
)
from pipeline.train.sources import read_rgb

PAPER_PARAMETERS = 433_000


def test_parameter_count_near_paper():
    count = count_trainable_parameters(InkClassifier(InkClassifierConfig()))
    assert abs(count - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.05


def test_forward_shape():
    model = InkClassifier(InkClassifierConfig()).eval()
    logits = model(torch.rand(3, 3, 128, 128))
    assert logits.shape == (3, 2)


def test_too_small_input_rejected():
    with pytest.raises(ValueError, match="too small"):
        InkClassifier(InkClassifierConfig(input_size_px=8))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    config = InkClassifierConfig(hidden_units=20, class_names=("background_ink", "foreground_ink"))
    model = InkClassifier(config).eval()
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, metadata={"seed": 0, "task": "background"})

    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert asdict(loaded.config) == asdict(config)
    assert loaded.metadata == {"seed": 0, "task": "background"}
    assert not loaded.model.training
    tiles = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(tiles), loaded.model(tiles))


def test_checkpoint_rejects_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match="not an InkWeb tile-classifier checkpoint"):
        load_checkpoint(path)


def _write_weights(folder, seed=0):
    torch.manual_seed(seed)
    for name in ("ink-classifier.pt", "background-classifier.pt"):
        save_checkpoint(folder / name, InkClassifier(InkClassifierConfig()), metadata={})


def test_load_models_missing_weights(tmp_path):
    with pytest.raises(WeightsNotFoundError) as raised:
        load_models("cpu", weights_dir=tmp_path)
    error = raised.value
    assert isinstance(error, FileNotFoundError)
    assert str(tmp_path / "ink-classifier.pt") in str(error)
    assert "inkremove train classifier --task ink" in str(error)


def test_weights_error_pickles(tmp_path):
    error = WeightsNotFoundError(tmp_path / "ink-classifier.pt", "ink")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.task == "ink"


def test_load_models_cached_per_device(tmp_path):
    _write_weights(tmp_path)
    first = load_models("cpu", weights_dir=tmp_path)
    second = load_models(torch.device("cpu"), weights_dir=tmp_path)
    assert first is second
    assert set(first.versions) == {"ink", "background"}
    for version in first.versions.values():
        assert version.startswith("sha256:")
        assert len(version) == len("sha256:") + 12


def test_predict_any_tile_size(tmp_path):
    _write_weights(tmp_path, seed=1)
    models = load_models("cpu", weights_dir=tmp_path)
    for size in (64, 128, 300):
        tiles = np.random.default_rng(size).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
        probabilities = models.ink.predict(tiles)
        assert probabilities.shape == (5,)
        assert probabilities.dtype == np.float32
        assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert models.background.predict(np.zeros((0, 128, 128, 3), np.uint8)).shape == (0,)


def test_predict_batches_match_single_calls():
    torch.manual_seed(2)
    classifier = TileClassifier(
        InkClassifier(InkClassifierConfig()),
        name="test",
        version="sha256:000000000000",
        device=torch.device("cpu"),
        batch_size=3,
    )
    tiles = np.random.default_rng(0).integers(0, 256, (7, 128, 128, 3), dtype=np.uint8)
    together = classifier.predict(tiles)
    alone = np.concatenate([classifier.predict(tiles[i : i + 1]) for i in range(7)])
    assert np.allclose(together, alone, atol=1e-6)


@pytest.mark.parametrize(
    "tiles",
    [
        np.zeros((128, 128, 3), np.uint8),
        np.zeros((2, 128, 128, 4), np.uint8),
        np.zeros((2, 128, 128, 3), np.float32),
    ],
)
def test_predict_rejects_bad_tiles(tiles):
    classifier = TileClassifier(
        InkClassifier(InkClassifierConfig()),
        name="test",
        version="sha256:000000000000",
        device=torch.device("cpu"),
    )
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        classifier.predict(tiles)


def test_shipped_weights_are_small_and_self_describing():
    for name in ("ink-classifier.pt", "background-classifier.pt"):
        path = WEIGHTS_DIR / name
        assert path.stat().st_size < 2_500_000
        checkpoint = load_checkpoint(path)
        assert checkpoint.metadata["seed"] == 0
        assert checkpoint.metadata["metrics"]["validation_accuracy"] > 0.9
        assert file_version(path).startswith("sha256:")
    assert (WEIGHTS_DIR / "MODEL_CARD.md").is_file()


def test_shipped_weights_on_real_tiles(shared_data):
    models = load_models("cpu")
    names = ["tile-green-pen-on-tissue", "tile-clean-lung", "tile-green-pen-on-glass"]
    tiles = np.stack([read_rgb(shared_data / "ink" / f"{name}.png") for name in names])
    ink = models.ink.predict(tiles)
    assert ink[0] > 0.5, "green pen over tissue must be classified as ink"
    assert ink[1] < 0.5, "clean lung must be classified as no ink"
    assert ink[2] > 0.5, "green pen on glass must be classified as ink"
    foreground = models.background.predict(tiles[[0, 2]])
    assert foreground[0] > 0.5, "green pen over tissue is foreground ink"
    assert foreground[1] < 0.5, "green pen on glass is background ink"
