"""The ``inkremove train cyclegan`` and ``inkremove train paired`` commands."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pipeline.train.imagepairs import DOMAINS
from pipeline.train.restoration import RestorationSettings, train_restoration

logger = logging.getLogger(__name__)

_CYCLEGAN = RestorationSettings(network="cyclegan", data_dir=Path("../shared/data"),
                                out=Path("cyclegan.pt"))
_PAIRED = RestorationSettings(network="paired", data_dir=Path("../shared/data"),
                              out=Path("paired-unet.pt"), steps=800, batch_size=2,
                              learning_rate=1e-3, filters=24)


def add_parsers(models: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``cyclegan`` and ``paired`` under ``inkremove train``."""
    cyclegan = models.add_parser(
        "cyclegan",
        help="train a CycleGAN ink-to-clean generator (unpaired)",
        description=(
            "Train a CycleGAN on 256 px crops of the clean training images: inked crops "
            "(simulated ink) and clean crops from different tissue. --domain dense or sparse "
            "keeps only crops with many or few nuclei. Writes the ink-to-clean generator "
            "and a JSON training report beside it."
        ),
    )
    cyclegan.add_argument("--domain", choices=DOMAINS, default="single",
                          help="crops to train on: single (all), dense or sparse "
                               "(default single)")
    _common(cyclegan, _CYCLEGAN)
    cyclegan.add_argument("--residual-blocks", type=int, default=_CYCLEGAN.residual_blocks,
                          help=f"residual blocks of the generator "
                               f"(default {_CYCLEGAN.residual_blocks})")
    cyclegan.add_argument("--cycle-weight", type=float, default=_CYCLEGAN.cycle_weight,
                          help=f"weight of the cycle-consistency loss "
                               f"(default {_CYCLEGAN.cycle_weight})")
    cyclegan.add_argument("--identity-weight", type=float, default=_CYCLEGAN.identity_weight,
                          help="weight of the identity loss, times the cycle weight "
                               f"(default {_CYCLEGAN.identity_weight})")
    cyclegan.set_defaults(func=run_train_restoration, network="cyclegan")

    paired = models.add_parser(
        "paired",
        help="train the paired U-Net restoration model",
        description=(
            "Train a U-Net on pairs of simulated-ink and clean 256 px crops with the ink "
            "mask as a fourth input channel, under an L1 + SSIM loss and an optional "
            "PatchGAN term. Writes the checkpoint and a JSON training report beside it."
        ),
    )
    _common(paired, _PAIRED)
    paired.add_argument("--depth", type=int, default=_PAIRED.depth,
                        help=f"U-Net levels (default {_PAIRED.depth})")
    paired.add_argument("--ssim-weight", type=float, default=_PAIRED.ssim_weight,
                        help=f"weight of the 1 - SSIM loss (default {_PAIRED.ssim_weight})")
    paired.add_argument("--adversarial-weight", type=float, default=_PAIRED.adversarial_weight,
                        help="weight of a conditional PatchGAN loss; 0 turns it off "
                             f"(default {_PAIRED.adversarial_weight})")
    paired.set_defaults(func=run_train_restoration, network="paired", domain="single")


def _common(parser: argparse.ArgumentParser, defaults: RestorationSettings) -> None:
    parser.add_argument("--data", type=Path, default=defaults.data_dir,
                        help="real data folder (default ../shared/data)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint file to write (.pt)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"random seed (default {defaults.seed})")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help=f"optimiser steps (default {defaults.steps})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help=f"crops per step (default {defaults.batch_size})")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate,
                        help=f"Adam learning rate, decayed linearly over the second half "
                             f"(default {defaults.learning_rate})")
    parser.add_argument("--filters", type=int, default=defaults.filters,
                        help=f"width of the first layer (default {defaults.filters})")
    parser.add_argument("--train-crops", type=int, default=defaults.train_crops,
                        help=f"simulated training crops before the domain filter "
                             f"(default {defaults.train_crops})")
    parser.add_argument("--validation-crops", type=int, default=defaults.validation_crops,
                        help=f"simulated validation crops (default {defaults.validation_crops})")
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help=f"CPU threads for torch (default {defaults.threads})")
    parser.add_argument("--half", action="store_true",
                        help="store the weights as float16 (half the file size)")


def run_train_restoration(args: argparse.Namespace) -> int:
    """Run ``inkremove train cyclegan|paired``; return the process exit code."""
    from pipeline.train.cli import arguments_valid, progress_display

    if not arguments_valid(args, ("steps", "batch_size", "train_crops", "validation_crops",
                                  "threads", "filters")):
        return 2
    defaults = _CYCLEGAN if args.network == "cyclegan" else _PAIRED
    settings = RestorationSettings(
        network=args.network, data_dir=args.data, out=args.out, domain=args.domain,
        seed=args.seed, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, train_crops=args.train_crops,
        validation_crops=args.validation_crops, threads=args.threads, filters=args.filters,
        residual_blocks=getattr(args, "residual_blocks", defaults.residual_blocks),
        cycle_weight=getattr(args, "cycle_weight", defaults.cycle_weight),
        identity_weight=getattr(args, "identity_weight", defaults.identity_weight),
        depth=getattr(args, "depth", defaults.depth),
        ssim_weight=getattr(args, "ssim_weight", defaults.ssim_weight),
        adversarial_weight=getattr(args, "adversarial_weight", defaults.adversarial_weight),
        half=args.half,
    )
    progress = progress_display()
    try:
        result = train_restoration(settings, progress=progress)
    except (FileNotFoundError, ValueError) as error:
        logger.error("training failed: %s", error)
        return 2
    finally:
        progress.close()
    restored, unchanged = result.metrics["restored"], result.metrics["unchanged"]
    sys.stdout.write(
        f"{args.network} ({settings.domain}): validation PSNR inside the ink "
        f"{restored['psnr_ink_db']:.2f} dB (unchanged {unchanged['psnr_ink_db']:.2f} dB) "
        f"on {restored['crops']} crops; wrote {result.checkpoint} and {result.report}\n"
    )
    return 0
