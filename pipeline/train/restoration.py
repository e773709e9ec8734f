"""Training of the restoration networks: CycleGAN (unpaired) and the paired U-Net.

Both learn from 256 px crops of the clean training sources with simulated ink
(``pipeline.train.imagepairs``). The CycleGAN trains on the crops unpaired: inked crops
from one half of the set and clean crops from the other, so it never gets the same
tissue with and without ink. The U-Net sees each crop's pair and the ink mask.

Validation uses crops of the validation sources: the restored crop is blended into the
inked one inside the simulator's ink mask, as the pipeline does, and scored against the
clean crop (PSNR over the crop and inside the ink).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional

from pipeline.compose import blend_weights, compose
from pipeline.evaluation.metrics import psnr
from pipeline.models.checkpoints import save_network
from pipeline.models.generators import (
    ImagePool,
    PatchDiscriminator,
    PatchDiscriminatorConfig,
    ResnetGenerator,
    ResnetGeneratorConfig,
    UNet,
    UNetConfig,
)
from pipeline.models.losses import least_squares_gan_loss, ssim
from pipeline.progress import ProgressCallback, ProgressEvent
from pipeline.train.determinism import deterministic
from pipeline.train.imagepairs import CropSet, Domain, generate_crops
from pipeline.train.sources import (
    BENCHMARK_HOLDOUT,
    TRAIN_SOURCES,
    VALIDATION_SOURCES,
    load_source,
)

logger = logging.getLogger(__name__)

Network = Literal["cyclegan", "paired"]
TRAINING_FORMAT_VERSION = "1"
# Inner feather of the validation blend, in pixels of the 256 px crops.
VALIDATION_FEATHER_PX = 2.0


@dataclass(frozen=True)
class RestorationSettings:
    """Everything that determines a restoration training run; stored in the checkpoint."""

    network: Network
    data_dir: Path
    out: Path
    domain: Domain = "single"
    seed: int = 0
    steps: int = 200
    batch_size: int = 1
    learning_rate: float = 2e-4
    train_crops: int = 800
    validation_crops: int = 48
    threads: int = 2
    # Width of the first layer of the generator (CycleGAN) or the U-Net (paired).
    filters: int = 16
    # CycleGAN
    residual_blocks: int = 6
    cycle_weight: float = 10.0
    identity_weight: float = 0.5  # times cycle_weight, as in the CycleGAN paper
    pool_size: int = 50
    discriminator_filters: int = 32
    # Paired U-Net
    depth: int = 4
    ssim_weight: float = 0.5
    ink_weight: float = 4.0
    adversarial_weight: float = 0.0
    half: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the settings as JSON-safe values; paths are given by name only."""
        values = asdict(self)
        values["data_dir"] = self.data_dir.name
        values["out"] = self.out.name
        return values


@dataclass
class RestorationResult:
    """Metrics of a finished run and where the checkpoint and report were written."""

    checkpoint: Path
    report: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def train_restoration(settings: RestorationSettings, *,
                      progress: ProgressCallback | None = None) -> RestorationResult:
    """Train one network, validate it, and write the checkpoint and a JSON report beside it.

    The checkpoint holds only values that the seed determines; wall-clock times go to
    the report ``<out stem>.json``.
    """
    if settings.network not in ("cyclegan", "paired"):
        raise ValueError(f"unknown network {settings.network!r}; expected cyclegan or paired")
    if settings.network == "paired" and settings.domain != "single":
        raise ValueError("the paired model trains on every crop; --domain is for cyclegan")
    report = progress or _no_progress
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with deterministic(settings.seed, settings.threads, strict_kernels=False):
        report(ProgressEvent("load", 0, 1, "loading clean source images"))
        train_sources = [load_source(settings.data_dir, name) for name in TRAIN_SOURCES]
        validation_sources = [load_source(settings.data_dir, name) for name in VALIDATION_SOURCES]
        mark = time.perf_counter()
        train = generate_crops(train_sources, count=settings.train_crops,
                               seed=settings.seed).select(settings.domain)
        validation = generate_crops(validation_sources, count=settings.validation_crops,
                                    seed=settings.seed + 1)
        validation_domain: Domain = settings.domain
        if len(validation.select(settings.domain)):
            validation = validation.select(settings.domain)
        else:
            # The validation images hold little dense tissue; score on every crop then.
            logger.warning("no %s validation crops; validating on all %d crops",
                           settings.domain, len(validation))
            validation_domain = "single"
        if len(train) < 2:
            raise ValueError(f"too few {settings.domain} crops ({len(train)}) for training; "
                             "raise --train-crops")
        timings["generate_s"] = time.perf_counter() - mark
        logger.info("%d training and %d validation crops of the %s domain",
                    len(train), len(validation), settings.domain)

        mark = time.perf_counter()
        if settings.network == "cyclegan":
            model, history = _fit_cyclegan(settings, train, report)
            architecture: Literal["resnet-generator", "unet"] = "resnet-generator"
        else:
            model, history = _fit_paired(settings, train, report)
            architecture = "unet"
        timings["train_s"] = time.perf_counter() - mark
        metrics = validate_restoration(model, validation, uses_mask=architecture == "unet")
        metrics["validation_domain"] = validation_domain

    metadata = {
        "network": settings.network,
        "domain": settings.domain,
        "seed": settings.seed,
        "version": TRAINING_FORMAT_VERSION,
        "settings": settings.to_json(),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "data": {
            "train_sources": list(TRAIN_SOURCES),
            "validation_sources": list(VALIDATION_SOURCES),
            "benchmark_holdout": list(BENCHMARK_HOLDOUT),
            "train_crops": len(train),
            "validation_crops": len(validation),
        },
        "metrics": metrics,
        "history": history,
        "torch": str(torch.__version__),
    }
    save_network(settings.out, model, architecture=architecture, metadata=metadata,
                 half=settings.half)
    timings["total_s"] = time.perf_counter() - started
    report_path = settings.out.with_suffix(".json")
    training_report = {
        **metadata,
        "file_bytes": settings.out.stat().st_size,
        "timings_s": {key: round(value, 1) for key, value in timings.items()},
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "threads": settings.threads},
    }
    report_path.write_text(json.dumps(training_report, indent=1) + "\n")
    report(ProgressEvent("done", 1, 1, f"wrote {settings.out}"))
    logger.info("trained %s (%s) in %.0f s: validation PSNR in ink %.2f dB (unchanged %.2f dB)",
                settings.network, settings.domain, timings["total_s"],
                metrics["restored"]["psnr_ink_db"], metrics["unchanged"]["psnr_ink_db"])
    return RestorationResult(checkpoint=settings.out, report=report_path, metrics=metrics)


def to_tensor(images: NDArray[np.uint8]) -> torch.Tensor:
    """Convert (N, H, W, 3) uint8 images to a (N, 3, H, W) float32 tensor in [-1, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(images))
    return batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def mask_channel(masks: NDArray[np.uint8]) -> torch.Tensor:
    """Convert (N, H, W) 0/1 masks to the U-Net's (N, 1, H, W) channel in {-1, 1}."""
    return torch.from_numpy(np.ascontiguousarray(masks)).float().unsqueeze(1).mul_(2.0).sub_(1.0)


def flip_batch(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip a (B, C, H, W) batch horizontally and vertically, each with probability 1/2."""
    flips = torch.rand(2, generator=generator)
    if flips[0] < 0.5:
        batch = batch.flip(3)
    if flips[1] < 0.5:
        batch = batch.flip(2)
    return batch


def _linear_decay(optimizer: torch.optim.Optimizer,
                  steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Constant learning rate for the first half of training, then linear decay to zero."""
    half = steps // 2

    def factor(step: int) -> float:
        return 1.0 if step < half else max(0.0, 1.0 - (step - half) / max(steps - half, 1))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class CycleGanTrainer:
    """The two generators and discriminators of a CycleGAN and one optimisation step.

    Domain A is inked tissue, domain B clean tissue; ``to_clean`` is the A-to-B generator
    that restoration uses.
    """

    def __init__(self, generator_config: ResnetGeneratorConfig,
                 discriminator_config: PatchDiscriminatorConfig, *, learning_rate: float,
                 cycle_weight: float, identity_weight: float, pool_size: int,
                 random: torch.Generator) -> None:
        self.to_clean = ResnetGenerator(generator_config)
        self.to_inked = ResnetGenerator(generator_config)
        self.judge_clean = PatchDiscriminator(discriminator_config)
        self.judge_inked = PatchDiscriminator(discriminator_config)
        self.generator_parameters = (list(self.to_clean.parameters())
                                     + list(self.to_inked.parameters()))
        self.discriminator_parameters = (list(self.judge_clean.parameters())
                                         + list(self.judge_inked.parameters()))
        self.optimise_generators = torch.optim.Adam(self.generator_parameters, lr=learning_rate,
                                                    betas=(0.5, 0.999))
        self.optimise_discriminators = torch.optim.Adam(self.discriminator_parameters,
                                                        lr=learning_rate, betas=(0.5, 0.999))
        self.cycle_weight = cycle_weight
        # The identity weight is relative to the cycle weight, as in the CycleGAN paper.
        self.identity_weight = identity_weight * cycle_weight
        self.pool_clean = ImagePool(pool_size, random)
        self.pool_inked = ImagePool(pool_size, random)

    def step(self, real_inked: torch.Tensor, real_clean: torch.Tensor) -> dict[str, float]:
        """Update the generators, then the discriminators; return the three losses."""
        for parameter in self.discriminator_parameters:
            parameter.requires_grad_(False)
        fake_clean, fake_inked = self.to_clean(real_inked), self.to_inked(real_clean)
        adversarial = (least_squares_gan_loss(self.judge_clean(fake_clean), real=True)
                       + least_squares_gan_loss(self.judge_inked(fake_inked), real=True))
        cycle = (functional.l1_loss(self.to_inked(fake_clean), real_inked)
                 + functional.l1_loss(self.to_clean(fake_inked), real_clean))
        identity = (functional.l1_loss(self.to_clean(real_clean), real_clean)
                    + functional.l1_loss(self.to_inked(real_inked), real_inked))
        generator_loss = (adversarial + self.cycle_weight * cycle
                          + self.identity_weight * identity)
        self.optimise_generators.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.optimise_generators.step()

        for parameter in self.discriminator_parameters:
            parameter.requires_grad_(True)
        old_clean = self.pool_clean.query(fake_clean)
        old_inked = self.pool_inked.query(fake_inked)
        discriminator_loss = 0.5 * (
            least_squares_gan_loss(self.judge_clean(real_clean), real=True)
            + least_squares_gan_loss(self.judge_clean(old_clean.detach()), real=False)
            + least_squares_gan_loss(self.judge_inked(real_inked), real=True)
            + least_squares_gan_loss(self.judge_inked(old_inked.detach()), real=False))
        self.optimise_discriminators.zero_grad(set_to_none=True)
        discriminator_loss.backward()
        self.optimise_discriminators.step()
        return {"adversarial": float(adversarial.detach()), "cycle": float(cycle.detach()),
                "discriminator": float(discriminator_loss.detach())}


class PairedTrainer:
    """The U-Net, an optional conditional PatchGAN, and one optimisation step."""

    def __init__(self, config: UNetConfig, *, learning_rate: float, ssim_weight: float,
                 ink_weight: float, adversarial_weight: float,
                 discriminator_filters: int = 32) -> None:
        self.model = UNet(config)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=learning_rate,
                                          betas=(0.5, 0.999))
        self.ssim_weight = ssim_weight
        self.ink_weight = ink_weight
        self.adversarial_weight = adversarial_weight
        self.judge: PatchDiscriminator | None = None
        if adversarial_weight > 0:
            # pix2pix: the discriminator scores the input beside the real or restored output.
            self.judge = PatchDiscriminator(PatchDiscriminatorConfig(
                in_channels=config.in_channels + config.out_channels,
                filters=discriminator_filters))
            self.optimise_judge = torch.optim.Adam(self.judge.parameters(), lr=learning_rate,
                                                   betas=(0.5, 0.999))

    def step(self, batch: torch.Tensor, target: torch.Tensor,
             ink: torch.Tensor) -> dict[str, float]:
        """Update on (B, 4, S, S) inputs, (B, 3, S, S) targets and (B, 1, S, S) ink weights.

        The L1 term is the mean over the crop plus ``ink_weight`` times the mean inside
        the ink, since ink covers a small share of most crops.
        """
        restored = self.model(batch)
        difference = (restored - target).abs()
        l1 = difference.mean() + self.ink_weight * (
            (difference * ink).sum() / (ink.sum() * 3 + 1.0))
        structural = 1.0 - ssim((restored + 1) / 2, (target + 1) / 2)
        loss = l1 + self.ssim_weight * structural
        adversarial = torch.zeros(())
        if self.judge is not None:
            adversarial = least_squares_gan_loss(self.judge(torch.cat([batch, restored], 1)),
                                                 real=True)
            loss = loss + self.adversarial_weight * adversarial
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        if self.judge is not None:
            judge_loss = 0.5 * (
                least_squares_gan_loss(self.judge(torch.cat([batch, target], 1)), real=True)
                + least_squares_gan_loss(self.judge(torch.cat([batch, restored.detach()], 1)),
                                         real=False))
            self.optimise_judge.zero_grad(set_to_none=True)
            judge_loss.backward()
            self.optimise_judge.step()
        return {"l1": float(l1.detach()), "ssim_loss": float(structural.detach()),
                "adversarial": float(adversarial.detach())}


def _fit_cyclegan(settings: RestorationSettings, crops: CropSet,
                  report: ProgressCallback) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train the CycleGAN on unpaired halves of ``crops``; return the ink-to-clean generator."""
    random = torch.Generator().manual_seed(settings.seed)
    trainer = CycleGanTrainer(
        ResnetGeneratorConfig(filters=settings.filters, residual_blocks=settings.residual_blocks),
        PatchDiscriminatorConfig(filters=settings.discriminator_filters),
        learning_rate=settings.learning_rate, cycle_weight=settings.cycle_weight,
        identity_weight=settings.identity_weight, pool_size=settings.pool_size, random=random)
    schedules = [_linear_decay(trainer.optimise_generators, settings.steps),
                 _linear_decay(trainer.optimise_discriminators, settings.steps)]
    half = len(crops) // 2
    inked = to_tensor(crops.inked[:half])  # (N/2, 3, 256, 256), domain A
    clean = to_tensor(crops.clean[half:])  # (N - N/2, 3, 256, 256), domain B
    history: list[dict[str, float]] = []
    totals = np.zeros(3)
    for step in range(settings.steps):
        real_inked = flip_batch(inked[torch.randint(len(inked), (settings.batch_size,),
                                                    generator=random)], random)
        real_clean = flip_batch(clean[torch.randint(len(clean), (settings.batch_size,),
                                                    generator=random)], random)
        losses = trainer.step(real_inked, real_clean)
        for schedule in schedules:
            schedule.step()
        totals += list(losses.values())
        _log_step(history, step, settings.steps, totals, tuple(losses), report)
    return trainer.to_clean.eval(), history


def _fit_paired(settings: RestorationSettings, crops: CropSet,
                report: ProgressCallback) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train the U-Net on (inked + mask, clean) pairs with L1, SSIM and an optional GAN term."""
    trainer = PairedTrainer(UNetConfig(filters=settings.filters, depth=settings.depth),
                            learning_rate=settings.learning_rate,
                            ssim_weight=settings.ssim_weight, ink_weight=settings.ink_weight,
                            adversarial_weight=settings.adversarial_weight,
                            discriminator_filters=settings.discriminator_filters)
    schedule = _linear_decay(trainer.optimiser, settings.steps)
    random = torch.Generator().manual_seed(settings.seed)
    inputs = torch.cat([to_tensor(crops.inked), mask_channel(crops.mask)], dim=1)  # (N, 4, S, S)
    targets = to_tensor(crops.clean)  # (N, 3, S, S)
    ink = torch.from_numpy(crops.mask).float().unsqueeze(1)  # (N, 1, S, S)
    history: list[dict[str, float]] = []
    totals = np.zeros(3)
    for step in range(settings.steps):
        index = torch.randint(len(inputs), (settings.batch_size,), generator=random)
        stacked = flip_batch(torch.cat([inputs[index], targets[index], ink[index]], dim=1),
                             random)
        losses = trainer.step(stacked[:, :4], stacked[:, 4:7], stacked[:, 7:])
        schedule.step()
        totals += list(losses.values())
        _log_step(history, step, settings.steps, totals, tuple(losses), report)
    return trainer.model.eval(), history


def _log_step(history: list[dict[str, float]], step: int, steps: int, totals: np.ndarray,
              names: tuple[str, ...], report: ProgressCallback) -> None:
    """Report progress; every tenth of training, append the mean losses to ``history``."""
    report(ProgressEvent("train", step + 1, steps, f"step {step + 1}/{steps}"))
    interval = max(steps // 10, 1)
    if (step + 1) % interval and step + 1 != steps:
        return
    count = (step % interval) + 1
    record = {"step": step + 1, **{name: round(float(value) / count, 4)
                                   for name, value in zip(names, totals, strict=True)}}
    history.append(record)
    totals[:] = 0
    logger.info("step %d/%d: %s", step + 1, steps,
                ", ".join(f"{name} {record[name]:.4f}" for name in names))


def validate_restoration(model: nn.Module, crops: CropSet, *, uses_mask: bool) -> dict[str, Any]:
    """Return mean PSNR (crop and inside the ink) of the unchanged and the restored crops.

    The network output is blended into the inked crop inside the simulator's mask with
    the pipeline's feathered weights, so pixels outside the ink keep their values.
    """
    model.eval()
    scores: dict[str, list[tuple[float, float]]] = {"unchanged": [], "restored": []}
    with torch.inference_mode():
        for start in range(0, len(crops), 8):
            inked = crops.inked[start:start + 8]
            batch = to_tensor(inked)
            if uses_mask:
                batch = torch.cat([batch, mask_channel(crops.mask[start:start + 8])], dim=1)
            output = ((model(batch) + 1.0) * 127.5).clamp(0, 255)
            output_images = output.permute(0, 2, 3, 1).numpy()  # (B, S, S, 3)
            for offset, restored in enumerate(output_images):
                index = start + offset
                mask = crops.mask[index] > 0
                weights = blend_weights(mask, feather_px=VALIDATION_FEATHER_PX)
                blended = compose(crops.inked[index], restored, weights)
                clean = crops.clean[index]
                scores["unchanged"].append((psnr(clean, crops.inked[index]),
                                            psnr(clean, crops.inked[index], mask)))
                scores["restored"].append((psnr(clean, blended), psnr(clean, blended, mask)))
    return {name: {"psnr_db": round(float(np.mean([pair[0] for pair in values])), 3),
                   "psnr_ink_db": round(float(np.mean([pair[1] for pair in values])), 3),
                   "crops": len(values)}
            for name, values in scores.items()}


def _no_progress(event: ProgressEvent) -> None:
    del event
