"""Tests of the box detector: box arithmetic, network, loss, decoding, checkpoints, labels."""

from __future__ import annotations

import argparse
import math
import pickle
from dataclasses import asdict

import numpy as np
import pytest
import torch

from pipeline.models.boxes import batched_nms, box_iou, nms
from pipeline.models.detector import (
    DETECTOR_FILE,
    STRIDES,
    DarknetBackbone,
    DetectedBox,
    Detector,
    DetectorConfig,
    DetectorNet,
    DetectorWeightsNotFoundError,
    ResidualBlock,
    decode_predictions,
    load_detector,
    load_detector_checkpoint,
    save_detector_checkpoint,
    select_boxes,
)
from pipeline.optical import HE_REFERENCE
from pipeline.train.cli import add_parser
from pipeline.train.detector import augment_detection_batch, kmeans_anchors
from pipeline.train.detector_data import (
    CLUSTER_CLASS,
    INK_CLASS,
    MIN_CLUSTER_AREA_PX,
    MIN_INK_PIXELS,
    cluster_boxes,
    generate_detection_tiles,
    ink_boxes,
    label_tile,
)
from pipeline.train.detector_eval import (
    average_precision,
    detection_scores,
    match_detections,
    pixel_recall,
)
from pipeline.train.detector_loss import yolo_loss
from pipeline.train.sources import read_rgb, source_from_array

SMALL = DetectorConfig(input_size_px=64)


def _random_boxes(generator: torch.Generator, count: int, span: float = 100.0) -> torch.Tensor:
    corners = torch.rand(count, 2, generator=generator) * span
    sizes = torch.rand(count, 2, generator=generator) * span / 3
    return torch.cat([corners, corners + sizes], dim=1)


def _reference_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    result = np.zeros((len(first), len(second)))
    for i, a in enumerate(first):
        for j, b in enumerate(second):
            width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            intersection = width * height
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
            result[i, j] = intersection / union if union > 0 else 0.0
    return result


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    remaining = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    while remaining:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [
            i for i in remaining if _reference_iou(boxes[[best]], boxes[[i]])[0, 0] <= threshold
        ]
    return kept


def test_box_iou_matches_reference():
    generator = torch.Generator().manual_seed(0)
    first = _random_boxes(generator, 30)
    second = torch.cat([_random_boxes(generator, 20), first[:3], torch.zeros(1, 4)])
    expected = _reference_iou(first.double().numpy(), second.double().numpy())
    np.testing.assert_allclose(box_iou(first, second).numpy(), expected, atol=1e-6)


def test_box_iou_known_values():
    first = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    second = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [10.0, 0.0, 20.0, 10.0], [2, 2, 2, 2]]
    )
    np.testing.assert_allclose(box_iou(first, second)[0].numpy(), [1.0, 1 / 3, 0.0, 0.0])


def test_nms_matches_reference():
    generator = torch.Generator().manual_seed(1)
    for threshold in (0.1, 0.3, 0.5, 0.7):
        boxes = _random_boxes(generator, 60, span=60.0)
        scores = torch.rand(60, generator=generator)
        kept = nms(boxes, scores, threshold).tolist()
        assert kept == _reference_nms(boxes.double().numpy(), scores.numpy(), threshold)


def test_nms_equal_scores_keep_input_order():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50, 50, 60, 60]])
    scores = torch.tensor([0.5, 0.5, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]


def test_nms_empty_input():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0


def test_batched_nms_matches_per_class_reference():
    generator = torch.Generator().manual_seed(2)
    boxes = _random_boxes(generator, 80, span=50.0)
    scores = torch.rand(80, generator=generator)
    labels = torch.randint(0, 3, (80,), generator=generator)
    kept = batched_nms(boxes, scores, labels, 0.4).tolist()

    expected = []
    for label in range(3):
        members = np.flatnonzero(labels.numpy() == label)
        chosen = _reference_nms(boxes.double().numpy()[members], scores.numpy()[members], 0.4)
        expected += members[chosen].tolist()
    expected.sort(key=lambda i: -float(scores[i]))
    assert kept == expected


def test_batched_nms_keeps_overlapping_boxes_of_other_classes():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.9, 0.8])
    assert batched_nms(boxes, scores, torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([1, 1]), 0.5).tolist() == [0]


def test_compact_output_shapes():
    torch.manual_seed(0)
    model = DetectorNet(DetectorConfig(input_size_px=128)).eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 128, 128))
    assert [tuple(output.shape) for output in outputs] == [
        (2, 3, 128 // stride, 128 // stride, 7) for stride in STRIDES
    ]
    decoded = decode_predictions(outputs, model.config)
    anchors = 3 * sum((128 // stride) ** 2 for stride in STRIDES)
    assert tuple(decoded.shape) == (2, anchors, 7)


def test_darknet53_layout_and_forward():
    torch.manual_seed(0)
    config = DetectorConfig(backbone="darknet53", input_size_px=64)
    model = DetectorNet(config).eval()
    backbone = model.backbone
    assert isinstance(backbone, DarknetBackbone)
    blocks = [sum(isinstance(m, ResidualBlock) for m in stage) for stage in backbone.stages]
    assert blocks == [1, 2, 8, 8, 4]
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in backbone.modules())
    assert convolutions == 52
    assert backbone.out_channels == (256, 512, 1024)
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(output.shape) for output in outputs] == [
        (1, 3, 8, 8, 7),
        (1, 3, 4, 4, 7),
        (1, 3, 2, 2, 7),
    ]


def test_config_rejects_invalid_values():
    with pytest.raises(ValueError, match="multiple of 32"):
        DetectorConfig(input_size_px=100)
    with pytest.raises(ValueError, match="unknown backbone"):
        DetectorConfig(backbone="resnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="anchors_px"):
        DetectorConfig(anchors_px=(((10.0, 10.0),),))


def test_loss_decreases_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = DetectorNet(SMALL)
    tiles = torch.rand(2, 3, 64, 64)
    targets = [
        torch.tensor([[8.0, 10.0, 30.0, 40.0, 0.0]]),
        torch.tensor([[20.0, 20.0, 60.0, 50.0, 1.0], [2.0, 2.0, 10.0, 8.0, 0.0]]),
    ]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        terms = yolo_loss(model(tiles), targets, SMALL)
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(float(terms.total.detach()))
    assert terms.positives == 3
    assert losses[-1] < 0.5 * losses[0]


def test_loss_assigns_box_to_best_anchor_shape():
    anchors = (((4.0, 4.0), (8.0, 8.0), (12.0, 6.0)),) * 2 + (((40.0, 40.0),) * 3,)
    config = DetectorConfig(input_size_px=64, anchors_px=anchors)
    outputs = [torch.zeros(1, 3, 64 // s, 64 // s, 7, requires_grad=True) for s in STRIDES]
    # A 12 x 6 box centred at (20, 36) matches the third anchor of stride 8 exactly,
    # in cell (row 4, column 2).
    target = [torch.tensor([[14.0, 33.0, 26.0, 39.0, 1.0]])]
    yolo_loss(outputs, target, config).total.backward()
    gradient = outputs[0].grad
    assert gradient is not None
    assigned = gradient[0, :, :, :, 5].nonzero().tolist()  # class logit of class 0
    assert assigned == [[2, 4, 2]]
    # log(size / anchor) is 0, so the size terms are at their minimum.
    assert gradient[0, 2, 4, 2, 2:4].abs().max() == 0


def test_decode_known_box():
    config = SMALL
    outputs = [torch.full((1, 3, 64 // s, 64 // s, 7), -10.0) for s in STRIDES]
    # Stride 16, anchor 1 (38 x 28 px), cell row 1, column 2: centre offsets 0.5 give a
    # centre at (40, 24); tw = log 2 doubles the width.
    raw = outputs[1][0, 1, 1, 2]
    raw[0:2] = 0.0
    raw[2] = math.log(2.0)
    raw[3] = 0.0
    raw[4] = 3.0  # objectness
    raw[5] = -3.0  # ink
    raw[6] = 2.0  # cluster
    decoded = decode_predictions(outputs, config)
    boxes = select_boxes(decoded, score_threshold=0.3, iou_threshold=0.45, max_detections=10)[0]
    assert boxes.shape == (1, 6)
    x0, y0, x1, y1, score, label = boxes[0].tolist()
    assert (x0, y0, x1, y1) == pytest.approx((2.0, 10.0, 78.0, 38.0), abs=1e-4)
    assert score == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item() * 0.8807971, abs=1e-5)
    assert label == 1.0
    clipped = select_boxes(
        decoded, score_threshold=0.3, iou_threshold=0.45, max_detections=10, image_size_px=64
    )[0]
    assert clipped[0, :4].tolist() == pytest.approx([2.0, 10.0, 64.0, 38.0], abs=1e-4)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    anchors = (((5.0, 6.0), (9.0, 9.0), (12.0, 20.0)),) * 3
    config = DetectorConfig(input_size_px=64, anchors_px=anchors, score_threshold=0.4)
    model = DetectorNet(config).eval()
    path = tmp_path / "detector.pt"
    save_detector_checkpoint(path, model, metadata={"seed": 0, "task": "detector"})

    loaded = load_detector_checkpoint(path)
    assert loaded.config == config
    assert asdict(loaded.config) == asdict(config)
    assert loaded.metadata == {"seed": 0, "task": "detector"}
    assert not loaded.model.training
    tiles = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for before, after in zip(model(tiles), loaded.model(tiles), strict=True):
            assert torch.equal(before, after)


def test_checkpoint_rejects_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "inkweb-tile-classifier", "state_dict": {}}, path)
    with pytest.raises(ValueError, match="not an InkWeb detector checkpoint"):
        load_detector_checkpoint(path)
    torch.save({"format": "inkweb-detector", "format_version": 99}, path)
    with pytest.raises(ValueError, match="format version 99"):
        load_detector_checkpoint(path)


class _FixedOutputs(torch.nn.Module):
    """Returns the same raw predictions for any batch, like a model that found one box."""

    def __init__(self, config: DetectorConfig, outputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.config = config
        self.outputs = outputs

    def forward(self, tiles: torch.Tensor) -> list[torch.Tensor]:
        return [output.expand(len(tiles), -1, -1, -1, -1) for output in self.outputs]


def test_detector_scales_boxes_to_tile_size():
    outputs = [torch.full((1, 3, 64 // s, 64 // s, 7), -10.0) for s in STRIDES]
    outputs[1][0, 1, 1, 2, :7] = torch.tensor([0.0, 0.0, 0.0, 0.0, 4.0, 4.0, -4.0])
    stub = _FixedOutputs(SMALL, outputs)
    detector = Detector(stub, version="test", device=torch.device("cpu"), batch_size=2)  # type: ignore[arg-type]

    tiles = np.zeros((3, 128, 256, 3), np.uint8)
    results = detector.detect(tiles)
    assert len(results) == 3
    for boxes in results:
        assert len(boxes) == 1
        box = boxes[0]
        assert isinstance(box, DetectedBox)
        assert box.label == "ink"
        # Anchor 38 x 28 centred at (40, 24) in the 64 px input; x scales by 4, y by 2.
        assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx((84.0, 20.0, 236.0, 76.0))
    assert detector.detect(np.zeros((0, 64, 64, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((1, 64, 64, 3), np.float32))  # type: ignore[arg-type]


def test_load_detector_missing_weights(tmp_path):
    with pytest.raises(DetectorWeightsNotFoundError) as raised:
        load_detector("cpu", weights_dir=tmp_path)
    error = raised.value
    assert isinstance(error, FileNotFoundError)
    assert "inkremove train detector" in str(error)
    assert str(tmp_path / DETECTOR_FILE) in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)


def test_load_detector_caches_per_folder(tmp_path):
    torch.manual_seed(0)
    save_detector_checkpoint(tmp_path / DETECTOR_FILE, DetectorNet(SMALL), metadata={})
    first = load_detector("cpu", weights_dir=tmp_path)
    assert load_detector(torch.device("cpu"), weights_dir=tmp_path) is first
    assert first.version.startswith("sha256:")
    assert first.class_names == ("ink", "cluster")


def test_ink_boxes_group_and_size_rule():
    mask = np.zeros((100, 100), bool)
    mask[10:20, 10:30] = True  # 200 px
    mask[10:20, 35:40] = True  # 5 px to the right: the same group
    mask[60:70, 60:70] = True  # 100 px, far away
    mask[90:95, 5:10] = True  # 25 px, under the minimum
    assert 25 < MIN_INK_PIXELS <= 100
    boxes = ink_boxes(mask)
    assert boxes.tolist() == [[10.0, 10.0, 40.0, 20.0], [60.0, 60.0, 70.0, 70.0]]
    assert ink_boxes(np.zeros((10, 10), bool)).shape == (0, 4)


def _stained(h: float, e: float) -> np.ndarray:
    """Return the RGB colour of haematoxylin and eosin amounts on white glass."""
    od = h * HE_REFERENCE[0] + e * HE_REFERENCE[1]
    return np.clip(np.rint(255.0 * 10.0 ** (-od)), 0, 255).astype(np.uint8)


def test_cluster_rule_on_synthetic_tile():
    tile = np.full((256, 256, 3), 255, np.uint8)
    tile[20:100, 30:130] = _stained(0.7, 0.1)  # dense haematoxylin: a cluster
    tile[150:240, 20:120] = _stained(0.05, 0.8)  # eosin-rich stroma
    tile[150:200, 150:200] = _stained(0.5, 0.5)  # red-cell-like: H leaks but E dominates
    tile[200:215, 200:215] = _stained(0.8, 0.0)  # dense but only 225 px
    assert MIN_CLUSTER_AREA_PX > 15 * 15

    boxes = cluster_boxes(tile)
    assert boxes.shape == (1, 4)
    # The density is 0.5 on a straight edge, so the box is the patch within a pixel.
    np.testing.assert_allclose(boxes[0], [30, 20, 130, 100], atol=1)


def test_cluster_rule_closes_thin_gaps():
    tile = np.full((256, 256, 3), 255, np.uint8)
    tile[40:120, 20:100] = _stained(0.7, 0.1)
    tile[40:120, 104:180] = _stained(0.7, 0.1)  # a 4 px gap: one cluster
    tile[180:240, 20:100] = _stained(0.7, 0.1)  # a 60 px gap: a second cluster
    boxes = cluster_boxes(tile)
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes[0], [20, 40, 180, 120], atol=1)
    np.testing.assert_allclose(boxes[1], [20, 180, 100, 240], atol=1)


def test_label_tile_combines_both_classes():
    clean = np.full((256, 256, 3), 255, np.uint8)
    clean[0:60, 0:60] = _stained(0.7, 0.1)
    ink = np.zeros((256, 256), np.uint8)
    ink[100:150, 100:200] = 1
    labelled = label_tile(clean, ink)
    assert labelled[labelled[:, 4] == INK_CLASS, :4].tolist() == [[100, 100, 200, 150]]
    clusters = labelled[labelled[:, 4] == CLUSTER_CLASS, :4]
    assert len(clusters) == 1
    np.testing.assert_allclose(clusters[0], [0, 0, 60, 60], atol=1)


def test_generate_detection_tiles_is_deterministic():
    rng = np.random.default_rng(0)
    image = np.full((600, 600, 3), 245, np.uint8)
    image[:, 300:] = _stained(0.7, 0.1)
    image[:, 300:] = np.clip(image[:, 300:] + rng.normal(0, 8, (600, 300, 3)), 0, 255)
    sources = [source_from_array("synthetic", image)]
    first = generate_detection_tiles(sources, count=6, seed=[3, 2, 0])
    second = generate_detection_tiles(sources, count=6, seed=[3, 2, 0])
    assert first.tiles.shape == (6, 256, 256, 3)
    assert np.array_equal(first.tiles, second.tiles)
    for boxes, again in zip(first.boxes, second.boxes, strict=True):
        assert np.array_equal(boxes, again)
        assert boxes.shape[1] == 5
        assert (boxes[:, 2] > boxes[:, 0]).all()
        assert (boxes[:, :4] >= 0).all()
        assert (boxes[:, :4] <= 256).all()
    assert sum(first.class_counts()) == sum(len(boxes) for boxes in first.boxes)


def test_augmentation_moves_boxes_with_pixels():
    tiles = torch.zeros(8, 3, 64, 64)
    tiles[:, :, 5:20, 30:60] = 1.0
    boxes = [torch.tensor([[30.0, 5.0, 60.0, 20.0, 0.0]]) for _ in range(8)]
    augmented, moved = augment_detection_batch(tiles, boxes, torch.Generator().manual_seed(0))
    positions = set()
    for tile, box in zip(augmented, moved, strict=True):
        rows, columns = np.nonzero(tile.mean(dim=0).numpy() > 0.5)
        bright = [columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]
        assert box[0, :4].tolist() == bright
        assert box[0, 4] == 0.0
        positions.add(tuple(bright))
    assert len(positions) > 1


def test_kmeans_anchors_sorted_and_reproducible():
    rng = np.random.default_rng(0)
    sizes = np.concatenate(
        [rng.normal(centre, 1.0, (50, 2)) for centre in (8, 16, 30, 50, 80, 120, 160, 200, 250)]
    ).astype(np.float32)
    anchors = kmeans_anchors(sizes, seed=0)
    assert anchors == kmeans_anchors(sizes, seed=0)
    flat = [size for scale in anchors for size in scale]
    assert len(anchors) == 3
    assert len(flat) == 9
    areas = [w * h for w, h in flat]
    assert areas == sorted(areas)
    assert flat[0][0] == pytest.approx(8, abs=2)
    assert flat[-1][0] == pytest.approx(250, abs=5)


def test_average_precision_hand_computed():
    # Two ground-truth boxes; detections in score order are hit, miss, hit.
    assert average_precision(np.array([True, False, True]), 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(np.array([True, True]), 2) == 1.0
    assert average_precision(np.array([], bool), 3) == 0.0
    assert average_precision(np.array([False]), 0) is None


def test_match_detections_counts_duplicates_as_false():
    truth = [np.array([[0, 0, 10, 10, 0], [20, 20, 30, 30, 1]], np.float32)]
    found = [
        np.array(
            [[0, 0, 10, 10, 0.9, 0], [1, 1, 10, 10, 0.8, 0], [20, 20, 30, 30, 0.7, 0]], np.float32
        )
    ]
    scores, hits, total = match_detections(found, truth, label=0)
    assert total == 1
    assert scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert hits.tolist() == [True, False, False]

    summary = detection_scores(found, truth, ("ink", "cluster"), operating_threshold=0.75)
    assert summary["per_class"]["ink"]["ap"] == 1.0
    assert summary["per_class"]["ink"]["precision"] == 0.5
    assert summary["per_class"]["cluster"]["ap"] == 0.0
    assert summary["map"] == 0.5


def test_pixel_recall_counts_pixels_inside_boxes():
    mask = np.zeros((20, 20), bool)
    mask[0:10, 0:10] = True
    found = [np.array([[0, 0, 5, 10, 0.9, 0], [0, 0, 10, 10, 0.9, 1]], np.float32)]
    assert pixel_recall(found, [mask], label=0, score_threshold=0.5) == 0.5
    assert pixel_recall(found, [mask], label=0, score_threshold=0.95) == 0.0
    assert pixel_recall(found, [np.zeros((20, 20), bool)], label=0, score_threshold=0.5) is None


def test_cli_registers_detector_command(tmp_path):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["train", "detector", "--out", str(tmp_path / "d.pt"), "--backbone", "darknet53"]
    )
    assert args.model == "detector"
    assert args.backbone == "darknet53"
    assert args.seed == 0
    assert args.device == "cpu"


def test_cli_rejects_bad_values(tmp_path):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = str(tmp_path / "d.pt")
    args = parser.parse_args(["train", "detector", "--out", out, "--epochs", "0"])
    assert args.func(args) == 2
    args = parser.parse_args(["train", "detector", "--out", out, "--data", str(tmp_path / "no")])
    assert args.func(args) == 2
    assert not (tmp_path / "d.pt").exists()


def test_shipped_detector_finds_real_green_ink(shared_data):
    try:
        detector = load_detector("cpu")
    except DetectorWeightsNotFoundError as exc:
        pytest.skip(f"trained detector weights missing ({exc})")
    tile = read_rgb(shared_data / "ink" / "tile-green-pen-on-glass.png")
    boxes = detector.detect(tile[None])[0]
    ink = [box for box in boxes if box.label == "ink"]
    assert ink, f"no ink box on the green-pen tile, got {boxes}"
    # The stroke crosses the tile, so the best ink box is large.
    best = ink[0]
    assert (best.x1 - best.x0) * (best.y1 - best.y0) > 0.05 * tile.shape[0] * tile.shape[1]
