"""Learned ink removal at inference: the CycleGAN generators and the paired U-Net.

``load_restorer(method, device)`` returns a restorer for a run option's method name
("cyclegan", "cyclegan-dense-sparse", "paired") and keeps it for the life of the
process, so a worker loads each network once::

    restorer = load_restorer("paired", "cpu")
    restored = restorer.restore_many([tile], [region])[0]  # (H, W, 3) float32, 0..255

Images are cut into overlapping 256 px patches, the size the networks trained on
(instance normalisation makes the output depend on the patch size). Only patches
that touch the ink region run, batched; overlaps are blended with a ramp. On CUDA the
networks run under float16 autocast; on CPU they use torch's thread pool.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pipeline.models import WEIGHTS_DIR, WeightsNotFoundError, file_version
from pipeline.models.checkpoints import load_network

logger = logging.getLogger(__name__)

PATCH_PX = 256
OVERLAP_PX = 32
DEFAULT_BATCH_SIZE = 8
# Softness of the switch between the dense and the sparse generator at a cluster box edge.
DOMAIN_BLEND_SIGMA_PX = 8.0

# Weight files of the networks and the commands that train them.
NETWORK_FILES: dict[str, tuple[str, str]] = {
    "cyclegan": ("cyclegan-single.pt", "inkremove train cyclegan --domain single"),
    "cyclegan-dense": ("cyclegan-dense.pt", "inkremove train cyclegan --domain dense"),
    "cyclegan-sparse": ("cyclegan-sparse.pt", "inkremove train cyclegan --domain sparse"),
    "paired": ("paired-unet.pt", "inkremove train paired"),
}


class Restorer(Protocol):
    """Anything that restores ink inside given regions of RGB images."""

    versions: dict[str, str]

    def restore_many(self, images: Sequence[NDArray[np.uint8]],
                     regions: Sequence[NDArray[np.bool_]]) -> list[NDArray[np.float32]]:
        """Return each (H, W, 3) image restored as float32 0..255 inside its (H, W) region."""


_Pixel = TypeVar("_Pixel", bound=np.generic)


@dataclass(frozen=True)
class _Patch:
    image: int
    y: int
    x: int


class NetworkRestorer:
    """One trained network with its patching and batching."""

    def __init__(self, model: nn.Module, *, name: str, version: str, device: torch.device,
                 uses_mask: bool, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.model = model.to(device).eval()
        self.name = name
        self.device = device
        self.uses_mask = uses_mask
        self.batch_size = batch_size
        self.versions = {name: version}
        self._window = _patch_window(PATCH_PX, OVERLAP_PX)

    def restore_many(self, images: Sequence[NDArray[np.uint8]],
                     regions: Sequence[NDArray[np.bool_]]) -> list[NDArray[np.float32]]:
        """Return each image restored inside its region; pixels of untouched patches keep input."""
        padded = [_pad_to_patch(image) for image in images]
        padded_regions = [_pad_to_patch(region.astype(np.uint8)) > 0 for region in regions]
        patches = [patch for index, region in enumerate(padded_regions)
                   for patch in _patches_touching(index, region)]
        sums = [np.zeros(image.shape, np.float32) for image in padded]
        weights = [np.zeros(image.shape[:2], np.float32) for image in padded]
        for start in range(0, len(patches), self.batch_size):
            chunk = patches[start:start + self.batch_size]
            batch = np.stack([self._input(padded[p.image], padded_regions[p.image], p)
                              for p in chunk])  # (B, S, S, C)
            outputs = self._run(batch)  # (B, S, S, 3) float32 0..255
            for patch, output in zip(chunk, outputs, strict=True):
                rows = slice(patch.y, patch.y + PATCH_PX)
                columns = slice(patch.x, patch.x + PATCH_PX)
                sums[patch.image][rows, columns] += output * self._window[:, :, None]
                weights[patch.image][rows, columns] += self._window
        restored = []
        for image, total, weight in zip(images, sums, weights, strict=True):
            height, width = image.shape[:2]
            result = image.astype(np.float32)
            covered = weight[:height, :width] > 0
            result[covered] = (total[:height, :width][covered]
                               / weight[:height, :width][covered][:, None])
            restored.append(result)
        return restored

    def _input(self, image: NDArray[np.uint8], region: NDArray[np.bool_],
               patch: _Patch) -> NDArray[np.float32]:
        rows = slice(patch.y, patch.y + PATCH_PX)
        columns = slice(patch.x, patch.x + PATCH_PX)
        pixels = image[rows, columns].astype(np.float32) / 127.5 - 1.0  # (S, S, 3)
        if not self.uses_mask:
            return pixels
        mask = region[rows, columns].astype(np.float32)[:, :, None] * 2.0 - 1.0
        return np.concatenate([pixels, mask], axis=2)  # (S, S, 4)

    @torch.inference_mode()
    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            # NOTE: this float16 path has not yet run on a GPU; only the CPU path is tested.
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                output = self.model(tensor)
        else:
            output = self.model(tensor)
        output = (output.float() + 1.0) * 127.5  # (B, 3, S, S)
        # .cpu() waits for the GPU to finish the batch.
        return output.clamp(0, 255).permute(0, 2, 3, 1).cpu().numpy()


class DenseSparseRestorer:
    """Two CycleGAN generators chosen per region by the detector's ``cluster`` boxes.

    Ink inside a cluster box (packed nuclei or cytoplasm) is restored by the generator
    trained on dense tissue, and the rest by the one trained on sparse tissue. The
    switch is blurred over a few pixels so that no seam shows inside a stroke.
    """

    def __init__(self, dense: NetworkRestorer, sparse: NetworkRestorer, detector: object) -> None:
        self.dense = dense
        self.sparse = sparse
        self.detector = detector
        detector_version = str(getattr(detector, "version", "unknown"))
        self.versions = {**dense.versions, **sparse.versions, "detector": detector_version}

    def cluster_weights(self, images: Sequence[NDArray[np.uint8]]) -> list[NDArray[np.float32]]:
        """Return per image a (H, W) weight of the dense generator, 1 inside cluster boxes.

        The detector runs on square tiles of its own input size at the image's resolution,
        as it was trained, and all tiles of all images form one batch.
        """
        size = int(getattr(self.detector, "config").input_size_px)  # noqa: B009
        tiles, origins = [], []
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            padded = np.pad(image, [(0, -height % size), (0, -width % size), (0, 0)],
                            mode="constant", constant_values=255)
            for y in range(0, padded.shape[0], size):
                for x in range(0, padded.shape[1], size):
                    tiles.append(padded[y:y + size, x:x + size])
                    origins.append((index, y, x))
        detections = self.detector.detect(np.stack(tiles))  # type: ignore[attr-defined]
        maps = [np.zeros(image.shape[:2], np.float32) for image in images]
        for (index, top, left), boxes in zip(origins, detections, strict=True):
            for box in boxes:
                if box.label == "cluster":
                    rows = slice(top + int(box.y0), top + int(np.ceil(box.y1)))
                    columns = slice(left + int(box.x0), left + int(np.ceil(box.x1)))
                    maps[index][rows, columns] = 1.0
        return [np.asarray(cv2.GaussianBlur(cluster, (0, 0), DOMAIN_BLEND_SIGMA_PX),
                           dtype=np.float32) for cluster in maps]

    def restore_many(self, images: Sequence[NDArray[np.uint8]],
                     regions: Sequence[NDArray[np.bool_]]) -> list[NDArray[np.float32]]:
        """Return each image restored by the dense and sparse generators, blended per pixel."""
        dense_weights = self.cluster_weights(images)
        dense = self.dense.restore_many(
            images, [region & (weight > 0.01) for region, weight in zip(regions, dense_weights,
                                                                          strict=True)])
        sparse = self.sparse.restore_many(
            images, [region & (weight < 0.99) for region, weight in zip(regions, dense_weights,
                                                                          strict=True)])
        blended: list[NDArray[np.float32]] = []
        for weight, first, second in zip(dense_weights, dense, sparse, strict=True):
            alpha = weight[:, :, np.newaxis]
            blended.append((alpha * first + (1.0 - alpha) * second).astype(np.float32))
        return blended


def missing_weights(method: str, *, weights_dir: Path | None = None) -> list[Path]:
    """Return the weight files that ``method`` needs and that are missing; [] for "od"."""
    folder = weights_dir or WEIGHTS_DIR
    names = {"cyclegan-dense-sparse": ["cyclegan-dense", "cyclegan-sparse"]}.get(
        method, [method] if method in NETWORK_FILES else [])
    paths = [folder / NETWORK_FILES[name][0] for name in names]
    if method == "cyclegan-dense-sparse":
        paths.append(folder / "detector.pt")
    return [path for path in paths if not path.is_file()]


def load_restorer(method: str, device: str | torch.device = "cpu", *,
                  weights_dir: Path | None = None) -> Restorer:
    """Return the restorer of a learned method; repeated calls in a process share it.

    Raises WeightsNotFoundError naming the missing file and its training command, and
    ValueError for a method without a network.
    """
    folder = (weights_dir or WEIGHTS_DIR).resolve()
    return _load_restorer_cached(method, str(torch.device(device)), folder)


@functools.cache
def _load_restorer_cached(method: str, device: str, weights_dir: Path) -> Restorer:
    if method == "cyclegan-dense-sparse":
        from pipeline.models.detector import load_detector

        return DenseSparseRestorer(_load_network("cyclegan-dense", device, weights_dir),
                                   _load_network("cyclegan-sparse", device, weights_dir),
                                   load_detector(device, weights_dir=weights_dir))
    if method not in NETWORK_FILES:
        raise ValueError(f"restoration method {method!r} has no network; "
                         f"expected one of {', '.join(NETWORK_FILES)}")
    return _load_network(method, device, weights_dir)


@functools.cache
def _load_network(name: str, device: str, weights_dir: Path) -> NetworkRestorer:
    filename, command = NETWORK_FILES[name]
    path = weights_dir / filename
    if not path.is_file():
        raise WeightsNotFoundError(path, name, f"{command} --data ../shared/data --out {path}")
    checkpoint = load_network(path, device=device)
    version = file_version(path)
    logger.info("loaded %s %s on %s", name, version, device)
    return NetworkRestorer(checkpoint.model, name=name, version=version,
                           device=torch.device(device),
                           uses_mask=checkpoint.architecture == "unet")


def _pad_to_patch(image: NDArray[_Pixel]) -> NDArray[_Pixel]:
    """Pad an image by reflection at the bottom and right to at least one patch per side."""
    height, width = image.shape[:2]
    pad_y, pad_x = max(0, PATCH_PX - height), max(0, PATCH_PX - width)
    if not pad_y and not pad_x:
        return image
    padding = [(0, pad_y), (0, pad_x)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, padding, mode="symmetric")


def _starts(length: int) -> list[int]:
    stride = PATCH_PX - OVERLAP_PX
    starts = list(range(0, length - PATCH_PX, stride))
    starts.append(length - PATCH_PX)
    return starts


def _patches_touching(index: int, region: NDArray[np.bool_]) -> list[_Patch]:
    height, width = region.shape
    return [_Patch(index, y, x) for y in _starts(height) for x in _starts(width)
            if region[y:y + PATCH_PX, x:x + PATCH_PX].any()]


def _patch_window(size: int, overlap: int) -> NDArray[np.float32]:
    """Return a (size, size) weight that ramps up over ``overlap`` pixels from each edge."""
    ramp = np.minimum(np.arange(size) + 1, np.arange(size)[::-1] + 1).astype(np.float32)
    profile = np.minimum(ramp / (overlap + 1), 1.0)
    return np.outer(profile, profile).astype(np.float32)
