"""The benchmark's datasets, baselines and tables."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.baselines import restore_telea, restore_unchanged, restore_white_fill
from pipeline.evaluation.benchmark import (
    real_pair_mask,
    run_benchmark,
    score_classifiers,
    score_thumbnail_detection,
    to_markdown,
)
from pipeline.evaluation.real_pairs import EXCLUDED_X, load_real_pairs
from pipeline.evaluation.simulated_set import simulated_cases
from pipeline.options import RunOptions


@pytest.fixture(scope="module")
def small_benchmark(shared_data):
    return run_benchmark(shared_data, methods=["unchanged", "white-fill", "od"],
                         simulated_count=6, seed=3, include_detection=False)


def test_real_pairs_split_by_x(shared_data):
    calibration = load_real_pairs(shared_data / "paired-blue-ink", "calibration")
    test = load_real_pairs(shared_data / "paired-blue-ink", "test")

    assert len(calibration) == 8
    assert len(test) == 8
    assert {pair.x for pair in calibration} == {39952}
    assert {pair.x for pair in test} == {40208}
    assert EXCLUDED_X not in {pair.x for pair in calibration + test}


def test_real_pair_halves_are_tiles(shared_data):
    pair = load_real_pairs(shared_data / "paired-blue-ink", "test")[0]

    assert pair.clean.shape == (256, 256, 3)
    assert pair.inked.shape == (256, 256, 3)
    # The inked half is darker in red, where blue ink absorbs most.
    assert pair.inked[..., 0].mean() < pair.clean[..., 0].mean()


def test_real_pair_mask_marks_blue_ink(shared_data):
    pair = load_real_pairs(shared_data / "paired-blue-ink", "test")[0]
    mask = real_pair_mask(pair.clean, pair.inked)

    assert mask.mean() > 0.5
    assert real_pair_mask(pair.clean, pair.clean).sum() == 0


def test_unknown_split_is_rejected(shared_data):
    with pytest.raises(ValueError, match="unknown split"):
        load_real_pairs(shared_data / "paired-blue-ink", "all")  # type: ignore[arg-type]


def test_simulated_cases_are_reproducible(shared_data):
    first = list(simulated_cases(shared_data, count=4, seed=5))
    second = list(simulated_cases(shared_data, count=4, seed=5))

    for first_case, second_case in zip(first, second, strict=True):
        assert first_case.name == second_case.name
        assert np.array_equal(first_case.inked, second_case.inked)
        assert np.array_equal(first_case.mask, second_case.mask)


def test_simulated_cases_cover_colours_and_placements(shared_data):
    cases = list(simulated_cases(shared_data, count=24, seed=0))

    assert {case.colour for case in cases} == {"blue", "green", "black", "red"}
    assert {case.placement for case in cases} == {"glass", "tissue", "edge"}
    assert {case.strength for case in cases} == {"light", "heavy"}
    for case in cases:
        assert case.inked.shape == (256, 256, 3)
        assert case.mask.any()
        outside = case.mask == 0
        assert np.array_equal(case.inked[outside], case.clean[outside])


def test_baselines_change_only_masked_pixels():
    rng = np.random.default_rng(0)
    inked = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[8:16, 8:16] = 1
    outside = mask == 0

    for restore in (restore_unchanged, restore_white_fill, restore_telea):
        restored = restore(inked, mask)
        assert np.array_equal(restored[outside], inked[outside]), restore.__name__
    assert (restore_white_fill(inked, mask)[mask != 0] == 255).all()


def test_benchmark_rows_per_method_and_mask(small_benchmark):
    for dataset in ("real-pairs", "simulated"):
        rows = small_benchmark["restoration"][dataset]["rows"]
        cells = {(row["method"], row["mask"]) for row in rows}
        assert cells == {(method, mask) for method in ("unchanged", "white-fill", "od")
                         for mask in ("detected", "ground-truth")}


def test_benchmark_unchanged_is_the_floor(small_benchmark):
    rows = small_benchmark["restoration"]["simulated"]["rows"]
    unchanged = next(row for row in rows
                     if row["method"] == "unchanged" and row["mask"] == "ground-truth")

    assert unchanged["outside_max_abs"] == 0
    assert unchanged["psnr_ink_db"] < unchanged["psnr_db"]


def test_benchmark_markdown_has_tables(small_benchmark):
    page = to_markdown(small_benchmark, command="inkremove evaluate --count 6")

    assert "| od | ground-truth |" in page
    assert "inkremove evaluate --count 6" in page


def test_classifier_scores_cover_both_tasks(shared_data):
    rows = score_classifiers(shared_data)
    labelled = {row["classifier"]: row for row in rows if row["group"] == "labelled-tiles"}

    assert set(labelled) == {"ink", "background"}
    assert labelled["ink"]["tiles"] == 5
    assert labelled["ink"]["accuracy"] == 1.0
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in rows)


def test_thumbnail_detection_scores(shared_data):
    rows = {row["image"]: row for row in score_thumbnail_detection(shared_data, RunOptions())}

    assert set(rows) == {"pen-black.png", "pen-green.png", "pen-red.png"}
    # Measured Dice: black 0.999, green 0.950, red 0.739 (faint red is missed).
    assert rows["pen-black.png"]["dice"] > 0.95
    assert rows["pen-green.png"]["dice"] > 0.9
    assert rows["pen-red.png"]["precision"] > 0.9
