"""Every restoration method in a pipeline run: it changes pixels only inside the ink mask."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from pipeline import RunOptions, run_pipeline
from pipeline.evaluation.methods import METHODS, tile_context
from pipeline.evaluation.simulated_set import simulated_cases
from pipeline.options import RESTORE_METHODS
from tests.pipeline.conftest import FakeModels

NETWORK_KEYS = {
    "od": set(),
    "cyclegan": {"cyclegan"},
    "cyclegan-dense-sparse": {"cyclegan-dense", "cyclegan-sparse", "detector"},
    "paired": {"paired"},
}


@pytest.mark.parametrize("method", RESTORE_METHODS)
def test_run_changes_only_pixels_inside_the_ink_mask(method, shared_data, tmp_path):
    source_path = shared_data / "ink" / "tcga-green-pen.png"
    report = run_pipeline(source_path, tmp_path, models=FakeModels(),
                          options=RunOptions(restore_method=method))
    with Image.open(source_path) as image:
        source = np.asarray(image.convert("RGB"))
    restored = tifffile.imread(tmp_path / "restored.tiff")
    mask = tifffile.imread(tmp_path / "ink-mask.tiff")
    changed = (restored != source).any(axis=2)

    assert report["restore_method"] == method
    assert report["options"]["restore_method"] == method
    assert set(report["models"]) == {"ink", "background"} | NETWORK_KEYS[method]
    assert changed.sum() > 1000  # the green stroke was restored
    # The PNG source is written losslessly, so "unchanged" means bit-identical.
    assert not changed[mask == 0].any()


@pytest.mark.parametrize("method", ["cyclegan", "cyclegan-dense-sparse", "paired"])
def test_benchmark_wrappers_change_nothing_outside_the_given_mask(method, shared_data):
    case = next(case for case in simulated_cases(shared_data, count=3, seed=0)
                if case.placement == "tissue")
    context = tile_context(case.inked, mpp=0.5, options=RunOptions())
    restored = METHODS[method](case.inked, case.mask, context)
    outside = case.mask == 0
    assert np.array_equal(restored[outside], case.inked[outside])
    assert not np.array_equal(restored[~outside], case.inked[~outside])
