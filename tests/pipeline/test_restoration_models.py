"""Tests of the restoration networks, their training steps, checkpoints and inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from pipeline.models import WeightsNotFoundError
from pipeline.models.checkpoints import load_network, save_network
from pipeline.models.generators import (
    ImagePool,
    PatchDiscriminator,
    PatchDiscriminatorConfig,
    ResnetGenerator,
    ResnetGeneratorConfig,
    UNet,
    UNetConfig,
)
from pipeline.models.losses import ssim
from pipeline.models.restorers import (
    PATCH_PX,
    DenseSparseRestorer,
    NetworkRestorer,
    load_restorer,
    missing_weights,
)
from pipeline.train.imagepairs import generate_crops
from pipeline.train.restoration import CycleGanTrainer, PairedTrainer
from pipeline.train.sources import source_from_array

SMALL_GENERATOR = ResnetGeneratorConfig(filters=8, residual_blocks=2)
SMALL_DISCRIMINATOR = PatchDiscriminatorConfig(filters=8, layers=2)
SMALL_UNET = UNetConfig(filters=8, depth=3)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _images(count: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 3, size, size, generator=generator) * 2 - 1


@pytest.mark.parametrize(("config", "size"), [(SMALL_GENERATOR, 64), (ResnetGeneratorConfig(), 256),
                                              (ResnetGeneratorConfig(global_skip=False), 96)])
def test_generator_keeps_the_input_shape_and_range(config, size):
    output = ResnetGenerator(config)(_images(2, size))
    assert output.shape == (2, 3, size, size)
    assert output.min() >= -1
    assert output.max() <= 1


def test_untrained_generator_and_unet_return_their_input():
    images = _images(1, 64)
    assert torch.equal(ResnetGenerator(SMALL_GENERATOR)(images), images)
    with_mask = torch.cat([images, torch.ones(1, 1, 64, 64)], dim=1)
    assert torch.equal(UNet(SMALL_UNET)(with_mask), images)


def test_patch_discriminator_output_grid():
    scores = PatchDiscriminator(PatchDiscriminatorConfig())(_images(2, 256))
    assert scores.shape == (2, 1, 30, 30)


def test_unet_maps_four_channels_to_three():
    output = UNet(UNetConfig())(torch.cat([_images(2, 128), torch.ones(2, 1, 128, 128)], 1))
    assert output.shape == (2, 3, 128, 128)


def test_ssim_matches_scikit_image():
    images = (_images(1, 48) + 1) / 2
    noisy = (images + 0.3 * _images(1, 48, seed=1)).clamp(0, 1)
    assert ssim(images, images).item() == pytest.approx(1.0, abs=1e-5)
    reference = structural_similarity(
        images[0].permute(1, 2, 0).double().numpy(), noisy[0].permute(1, 2, 0).double().numpy(),
        channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False)
    assert ssim(images, noisy).item() == pytest.approx(reference, abs=2e-3)


def test_image_pool_returns_stored_images_once_full():
    pool = ImagePool(2, torch.Generator().manual_seed(0))
    first, second = _images(1, 8, seed=1), _images(1, 8, seed=2)
    assert torch.equal(pool.query(first), first)
    assert torch.equal(pool.query(second), second)
    returned = torch.cat([pool.query(_images(1, 8, seed=3 + index)) for index in range(20)])
    stored = [first, second]
    assert any(torch.equal(image[None], old) for image in returned for old in stored)
    assert ImagePool(0, torch.Generator()).query(first) is first


def test_cyclegan_overfits_one_batch():
    clean = _images(1, 32, seed=2) * 0.3
    inked = clean * 0.5 - 0.4
    trainer = CycleGanTrainer(SMALL_GENERATOR, SMALL_DISCRIMINATOR, learning_rate=2e-3,
                              cycle_weight=10.0, identity_weight=0.5, pool_size=0,
                              random=torch.Generator().manual_seed(0))
    losses = [trainer.step(inked, clean) for _ in range(15)]
    # The discriminators learn to separate the batch, and the generators' adversarial loss falls.
    assert losses[-1]["discriminator"] < 0.5 * losses[0]["discriminator"]
    assert losses[-1]["adversarial"] < losses[0]["adversarial"]
    assert all(np.isfinite(list(step.values())).all() for step in losses)


@pytest.mark.parametrize("adversarial_weight", [0.0, 0.1])
def test_paired_unet_overfits_one_batch(adversarial_weight):
    clean = _images(2, 32, seed=1)
    ink = torch.zeros(2, 1, 32, 32)
    ink[:, :, 8:24, 12:20] = 1
    inked = torch.where(ink > 0, clean * 0.3 - 0.5, clean)
    batch = torch.cat([inked, ink * 2 - 1], dim=1)
    trainer = PairedTrainer(SMALL_UNET, learning_rate=3e-3, ssim_weight=0.5, ink_weight=4.0,
                            adversarial_weight=adversarial_weight, discriminator_filters=8)
    first = trainer.step(batch, clean, ink)
    for _ in range(60):
        last = trainer.step(batch, clean, ink)
    assert last["l1"] < 0.5 * first["l1"]


@pytest.mark.parametrize("half", [False, True])
def test_checkpoint_round_trip_restores_config_and_outputs(tmp_path, half):
    model = UNet(SMALL_UNET)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.1)
    path = tmp_path / "unet.pt"
    save_network(path, model, architecture="unet", metadata={"seed": 0}, half=half)
    loaded = load_network(path, expected="unet")
    assert loaded.config == SMALL_UNET
    assert loaded.metadata == {"seed": 0}
    batch = torch.cat([_images(1, 32), torch.ones(1, 1, 32, 32)], dim=1)
    with torch.no_grad():
        expected, actual = model.eval()(batch), loaded.model(batch)
    if half:
        assert torch.allclose(expected, actual, atol=2e-2)
    else:
        assert torch.equal(expected, actual)


def test_checkpoint_refuses_the_wrong_architecture_and_foreign_files(tmp_path):
    path = tmp_path / "generator.pt"
    save_network(path, ResnetGenerator(SMALL_GENERATOR), architecture="resnet-generator",
                 metadata={})
    with pytest.raises(ValueError, match="expected a unet"):
        load_network(path, expected="unet")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="not an InkWeb image-network checkpoint"):
        load_network(foreign)
    with pytest.raises(TypeError):
        save_network(path, ResnetGenerator(SMALL_GENERATOR), architecture="unet", metadata={})


class _AddNetwork(torch.nn.Module):
    """A stand-in for a trained network that adds a constant to the image channels."""

    def __init__(self, offset: float, channels: int = 3) -> None:
        super().__init__()
        self.offset = offset
        self.channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images[:, :3] + self.offset).clamp(-1, 1)


def _restorer(offset: float, *, uses_mask: bool = False) -> NetworkRestorer:
    return NetworkRestorer(_AddNetwork(offset), name="add", version="test",
                           device=torch.device("cpu"), uses_mask=uses_mask, batch_size=3)


def test_restorer_runs_only_patches_that_touch_the_region():
    image = np.full((600, 700, 3), 100, np.uint8)
    region = np.zeros((600, 700), bool)
    region[10:20, 10:20] = True
    restored = _restorer(0.2).restore_many([image], [region])[0]
    assert restored.dtype == np.float32
    assert restored.shape == image.shape
    assert np.allclose(restored[10:20, 10:20], 100 + 0.2 * 127.5, atol=0.01)
    assert np.array_equal(restored[400:, 500:], image[400:, 500:].astype(np.float32))


def test_restorer_small_images_and_batches():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (100, 130, 3), dtype=np.uint8),
              rng.integers(0, 256, (PATCH_PX + 90, PATCH_PX + 10, 3), dtype=np.uint8)]
    regions = [np.ones(image.shape[:2], bool) for image in images]
    restorer = NetworkRestorer(UNet(SMALL_UNET).eval(), name="unet", version="test",
                               device=torch.device("cpu"), uses_mask=True)
    together = restorer.restore_many(images, regions)
    for image, region, result in zip(images, regions, together, strict=True):
        alone = restorer.restore_many([image], [region])[0]
        assert np.allclose(alone, result, atol=1e-3)
        # An untrained U-Net is the identity.
        assert np.allclose(result, image, atol=0.5)


@dataclass
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    label: str


@dataclass
class _DetectorConfig:
    input_size_px: int = 256


class _FakeDetector:
    """Finds a cluster in the left half of every tile and ink in the top right corner."""

    version = "sha256:test"
    config = _DetectorConfig()

    def __init__(self) -> None:
        self.calls: list[tuple[int, ...]] = []

    def detect(self, tiles):
        self.calls.append(tiles.shape)
        return [[_Box(0, 0, 128, 256, 0.9, "cluster"), _Box(200, 0, 256, 50, 0.9, "ink")]
                for _ in tiles]


def test_dense_sparse_routes_cluster_boxes():
    detector = _FakeDetector()
    restorer = DenseSparseRestorer(_restorer(0.4), _restorer(-0.4), detector)
    image = np.full((300, 400, 3), 128, np.uint8)
    region = np.ones((300, 400), bool)
    restored = restorer.restore_many([image], [region])[0]
    # The detector saw the image in four native-resolution 256 px tiles, in one batch.
    assert detector.calls == [(4, 256, 256, 3)]
    assert restored[100, 40].mean() > 170  # dense: +51 inside the first tile's cluster box
    assert restored[100, 200].mean() < 90  # sparse: -51 outside it
    assert restored[280, 300].mean() > 170  # inside the cluster box of the lower right tile
    assert restorer.versions["detector"] == "sha256:test"


def test_missing_weights_name_the_training_command(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="inkremove train paired"):
        load_restorer("paired", "cpu", weights_dir=tmp_path)
    with pytest.raises(ValueError, match="has no network"):
        load_restorer("od", "cpu", weights_dir=tmp_path)


def test_training_crops_are_reproducible_and_split_by_domain():
    rng = np.random.default_rng(0)
    pink = np.full((600, 600, 3), (230, 150, 190), np.uint8)
    # Densely packed dark purple nuclei in the left half only.
    for _ in range(4000):
        y, x = int(rng.integers(0, 600)), int(rng.integers(0, 280))
        pink[max(y - 3, 0):y + 3, max(x - 3, 0):x + 3] = (70, 40, 120)
    source = source_from_array("synthetic", pink)
    first = generate_crops([source], count=12, seed=3)
    second = generate_crops([source], count=12, seed=3)
    assert np.array_equal(first.inked, second.inked)
    assert np.array_equal(first.cluster_share, second.cluster_share)
    assert all(mask.any() for mask in first.mask)
    dense, sparse = first.select("dense"), first.select("sparse")
    assert len(dense) + len(sparse) == len(first)
    assert len(dense) > 0
    assert len(sparse) > 0
    assert first.select("single") is first


def test_missing_weights_lists_each_file_a_method_needs(tmp_path):
    assert missing_weights("od", weights_dir=tmp_path) == []
    assert missing_weights("paired", weights_dir=tmp_path) == [tmp_path / "paired-unet.pt"]
    assert missing_weights("cyclegan-dense-sparse", weights_dir=tmp_path) == [
        tmp_path / "cyclegan-dense.pt", tmp_path / "cyclegan-sparse.pt", tmp_path / "detector.pt"]
    (tmp_path / "paired-unet.pt").write_bytes(b"")
    assert missing_weights("paired", weights_dir=tmp_path) == []


@pytest.mark.parametrize("arguments", [["paired", "--steps", "0"],
                                       ["cyclegan", "--domain", "dense", "--filters", "0"],
                                       ["paired", "--data", "no-such-folder"]])
def test_train_command_rejects_invalid_arguments(arguments, tmp_path, caplog):
    from pipeline.cli import main

    assert main(["train", *arguments, "--out", str(tmp_path / "model.pt")]) == 2
    assert not (tmp_path / "model.pt").exists()
    assert "must be at least 1" in caplog.text or "has no clean/ images" in caplog.text
