"""Tests of classifier training: data sources, tile generation, augmentation and the loop."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.models.classifier import InkClassifier, InkClassifierConfig, load_checkpoint
from pipeline.models.preprocess import tiles_to_tensor
from pipeline.simulate import simulate_ink
from pipeline.train.cli import add_parser
from pipeline.train.loop import TrainSettings, augment_batch, train_classifier
from pipeline.train.realink import load_evaluation_groups
from pipeline.train.samples import generate_tiles
from pipeline.train.sources import (
    BENCHMARK_HOLDOUT,
    TRAIN_SOURCES,
    VALIDATION_SOURCES,
    load_source,
    source_from_array,
    tissue_mask,
)


def _synthetic_slide(seed: int = 0) -> np.ndarray:
    """Glass on the left half, noisy pink tissue on the right half."""
    rng = np.random.default_rng(seed)
    image = np.full((384, 384, 3), 240, np.uint8)
    tissue = np.clip(np.array([220, 140, 190]) + rng.normal(0, 20, (384, 192, 3)), 0, 255)
    image[:, 192:] = tissue.astype(np.uint8)
    return image


def test_splits_are_disjoint():
    train = set(TRAIN_SOURCES)
    validation = set(VALIDATION_SOURCES)
    holdout = set(BENCHMARK_HOLDOUT)
    assert not train & validation
    assert not train & holdout
    assert not validation & holdout
    assert all(not name.startswith("ink/") for name in train | validation)
    assert "clean/he-source.png" in holdout
    assert "clean/he-target.png" in holdout
    assert "clean/tissue-level0-7352-11762-7864-12274.png" in holdout


def test_load_source_rejects_holdout(shared_data):
    with pytest.raises(ValueError, match="held out"):
        load_source(shared_data, "clean/he-source.png")
    with pytest.raises(ValueError, match="held out"):
        load_source(shared_data, "ink/tile-clean-lung.png")


def test_tissue_mask_separates_glass_and_tissue():
    mask = tissue_mask(_synthetic_slide())
    assert mask[:, :150].mean() < 0.01
    assert mask[:, 230:].mean() > 0.95


def test_generate_tiles_deterministic_and_balanced():
    sources = [source_from_array("synthetic", _synthetic_slide())]
    first = generate_tiles("ink", sources, count=12, seed=[3, 0])
    second = generate_tiles("ink", sources, count=12, seed=[3, 0])
    assert first.tiles.shape == (12, 128, 128, 3)
    assert np.array_equal(first.tiles, second.tiles)
    assert np.array_equal(first.labels, second.labels)
    assert first.labels.sum() == 6
    other = generate_tiles("ink", sources, count=12, seed=[4, 0])
    assert not np.array_equal(first.tiles, other.tiles)


def test_background_tiles_follow_tissue():
    sources = [source_from_array("synthetic", _synthetic_slide())]
    tile_set = generate_tiles("background", sources, count=8, seed=1)
    for record in tile_set.records:
        if record["label"] == 0:
            assert record["tissue_fraction"] <= 0.003
        else:
            assert record["tissue_fraction"] >= 0.03
        assert record["ink_fraction"] >= 0.01


def test_generate_tiles_rejects_unknown_task():
    sources = [source_from_array("synthetic", _synthetic_slide())]
    with pytest.raises(ValueError, match="unknown task"):
        generate_tiles("detector", sources, count=2, seed=0)


def test_augment_batch_deterministic_and_in_range():
    tiles = torch.rand(6, 3, 32, 32)
    first = augment_batch(tiles, torch.Generator().manual_seed(1))
    second = augment_batch(tiles, torch.Generator().manual_seed(1))
    assert first.shape == tiles.shape
    assert torch.equal(first, second)
    assert first.min() >= 0.0
    assert first.max() <= 1.0


def test_overfit_one_batch():
    torch.manual_seed(0)
    clean = _synthetic_slide()[:128, 128:256]
    rng = np.random.default_rng(0)
    tiles = []
    for index in range(8):
        if index % 2:
            tiles.append(simulate_ink(clean, rng=rng, kind="line", width_px=20.0).inked)
        else:
            tiles.append(clean)
    batch = tiles_to_tensor(np.stack(tiles))  # (8, 3, 128, 128)
    labels = torch.tensor([index % 2 for index in range(8)])
    model = InkClassifier(InkClassifierConfig(dropout=0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_function = nn.CrossEntropyLoss()
    with torch.no_grad():
        initial = float(loss_function(model(batch), labels))
    for _ in range(30):
        loss = loss_function(model(batch), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(batch)
    final = float(loss_function(logits, labels))
    assert initial > 0.3
    assert final < 0.1
    assert torch.equal(logits.argmax(dim=1), labels)


def test_real_ink_groups_labelled(shared_data):
    ink_groups = {group.name: group for group in load_evaluation_groups(shared_data, "ink")}
    assert set(ink_groups) == {"labelled-tiles", "tcga-crops", "thumbnail-crops"}
    tiles = ink_groups["labelled-tiles"]
    assert tiles.tiles.shape == (5, 128, 128, 3)
    assert (
        dict(zip(tiles.items, tiles.labels.tolist(), strict=True))["ink/tile-clean-lung.png"] == 0
    )
    assert set(ink_groups["thumbnail-crops"].labels.tolist()) == {0, 1}

    background_groups = load_evaluation_groups(shared_data, "background")
    labelled = next(group for group in background_groups if group.name == "labelled-tiles")
    by_name = dict(zip(labelled.items, labelled.labels.tolist(), strict=True))
    assert by_name == {
        "ink/tile-green-pen-on-tissue.png": 1,
        "ink/tile-green-pen-on-glass.png": 0,
        "ink/tile-red-pen-on-glass.png": 0,
        "ink/tile-red-pen-on-sparse-tissue.png": 1,
    }


def _train_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inkremove")
    add_parser(parser.add_subparsers())
    return parser.parse_args(["train", "classifier", *argv])


def test_train_cli_parses_options(tmp_path):
    args = _train_args(
        ["--task", "background", "--data", str(tmp_path), "--out", "x.pt", "--epochs", "3"]
    )
    assert args.task == "background"
    assert args.epochs == 3
    assert callable(args.func)


def test_train_cli_rejects_bad_values(tmp_path):
    args = _train_args(["--task", "ink", "--out", str(tmp_path / "x.pt"), "--epochs", "0"])
    assert args.func(args) == 2
    args = _train_args(["--task", "ink", "--data", str(tmp_path / "missing"), "--out", "x.pt"])
    assert args.func(args) == 2


def test_train_classifier_small_run(shared_data, tmp_path):
    out = tmp_path / "ink-classifier.pt"
    events = []
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    settings = TrainSettings(
        task="ink",
        data_dir=shared_data,
        out=out,
        seed=0,
        epochs=1,
        batch_size=16,
        train_tiles=32,
        validation_tiles=16,
    )
    result = train_classifier(settings, progress=events.append)

    checkpoint = load_checkpoint(out)
    assert checkpoint.metadata["task"] == "ink"
    assert checkpoint.metadata["data"]["train_tiles"] == 32
    assert "overall" in checkpoint.metadata["metrics"]["real_ink"]
    report = json.loads(result.report.read_text())
    assert report["timings_s"]["total_s"] > 0
    assert {event.stage for event in events} >= {"load", "train", "done"}
    assert all(0 <= event.done <= event.total for event in events)
    assert torch.are_deterministic_algorithms_enabled() == deterministic_before
