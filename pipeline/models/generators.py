"""Image-to-image networks that remove ink: the CycleGAN pair and the paired U-Net.

The CycleGAN parts follow Zhu et al., "Unpaired image-to-image translation using
cycle-consistent adversarial networks", ICCV 2017. The generator is a ResNet (7x7
stem, two stride-2 convolutions, residual blocks at a quarter of the resolution, two
upsamplings, 7x7 output) with instance normalisation and reflection padding. The
discriminator is a 70 x 70 PatchGAN. Two changes suit a small model
trained briefly: upsampling is nearest-neighbour followed by a 3x3 convolution, which
avoids the checkerboard of transposed convolutions, and the generator may add its
output to its input (``global_skip``), so that an untrained generator is the identity
and training only has to learn the change that ink makes.

The paired model is a U-Net (Ronneberger et al., MICCAI 2015) that takes the inked RGB
tile and the ink mask as a fourth channel and predicts the clean tile, again as a
correction added to the input. Every network works on (B, C, H, W) float tensors in
[-1, 1]; inputs need sides divisible by ``size_multiple``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

Architecture = Literal["resnet-generator", "unet", "patch-discriminator"]


def _instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


@dataclass(frozen=True)
class ResnetGeneratorConfig:
    """Hyperparameters of a ResnetGenerator; stored in its checkpoint."""

    in_channels: int = 3
    out_channels: int = 3
    filters: int = 32
    residual_blocks: int = 6
    global_skip: bool = True

    @property
    def size_multiple(self) -> int:
        """Input sides must be a multiple of this (two stride-2 stages)."""
        return 4


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _instance_norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _instance_norm(channels),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class ResnetGenerator(nn.Module):
    """Maps (B, in_channels, H, W) images in [-1, 1] to (B, out_channels, H, W) in [-1, 1]."""

    def __init__(self, config: ResnetGeneratorConfig) -> None:
        super().__init__()
        self.config = config
        width = config.filters
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(config.in_channels, width, 7),
            _instance_norm(width), nn.ReLU(inplace=True),
        ]
        for _ in range(2):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
                       _instance_norm(width * 2), nn.ReLU(inplace=True)]
            width *= 2
        layers += [_ResidualBlock(width) for _ in range(config.residual_blocks)]
        for _ in range(2):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                       nn.Conv2d(width, width // 2, 3), _instance_norm(width // 2),
                       nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, config.out_channels, 7)]
        self.body = nn.Sequential(*layers)
        if config.global_skip:
            # Start as the identity: the output layer's correction is zero until trained.
            last = layers[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)  # type: ignore[arg-type]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Translate a (B, in_channels, H, W) batch."""
        correction = self.body(images)  # (B, out, H, W)
        if self.config.global_skip:
            return torch.clamp(images[:, : self.config.out_channels] + correction, -1.0, 1.0)
        return torch.tanh(correction)


@dataclass(frozen=True)
class PatchDiscriminatorConfig:
    """Hyperparameters of a PatchDiscriminator."""

    in_channels: int = 3
    filters: int = 32
    layers: int = 3


class PatchDiscriminator(nn.Module):
    """Scores overlapping 70 x 70 patches (with 3 layers) of (B, C, H, W) images as real or fake.

    Returns (B, 1, H', W') raw scores; the least-squares GAN loss compares them with 1
    (real) and 0 (fake).
    """

    def __init__(self, config: PatchDiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        width = config.filters
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, width, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for index in range(1, config.layers + 1):
            stride = 2 if index < config.layers else 1
            wider = config.filters * min(2 ** index, 8)
            layers += [nn.Conv2d(width, wider, 4, stride=stride, padding=1),
                       _instance_norm(wider), nn.LeakyReLU(0.2, inplace=True)]
            width = wider
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Score a (B, in_channels, H, W) batch patch by patch."""
        return self.body(images)


@dataclass(frozen=True)
class UNetConfig:
    """Hyperparameters of a UNet; stored in its checkpoint."""

    in_channels: int = 4  # RGB and the ink mask
    out_channels: int = 3
    filters: int = 24
    depth: int = 4

    @property
    def size_multiple(self) -> int:
        """Input sides must be a multiple of this (one halving per level below the top)."""
        return 2 ** (self.depth - 1)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect"),
        _instance_norm(out_channels), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, padding_mode="reflect"),
        _instance_norm(out_channels), nn.LeakyReLU(0.1, inplace=True),
    )


class UNet(nn.Module):
    """Maps (B, in_channels, H, W) in [-1, 1] to the (B, out_channels, H, W) restored image.

    The first ``out_channels`` input channels are the image; the network predicts a
    correction that is added to them, so an untrained U-Net returns its input.
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.filters * 2 ** level for level in range(config.depth)]
        self.down = nn.ModuleList()
        previous = config.in_channels
        for width in widths:
            self.down.append(_double_conv(previous, width))
            previous = width
        self.pool = nn.AvgPool2d(2)
        self.up = nn.ModuleList()
        for level in range(config.depth - 2, -1, -1):
            self.up.append(_double_conv(widths[level + 1] + widths[level], widths[level]))
        self.head = nn.Conv2d(widths[0], config.out_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)  # type: ignore[arg-type]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Restore a (B, in_channels, H, W) batch."""
        skips = []
        features = images
        for level, block in enumerate(self.down):
            if level:
                features = self.pool(features)
            features = block(features)
            skips.append(features)
        skips.pop()
        for block in self.up:
            features = nn.functional.interpolate(features, scale_factor=2.0, mode="nearest")
            features = block(torch.cat([features, skips.pop()], dim=1))
        correction = self.head(features)  # (B, out, H, W)
        return torch.clamp(images[:, : self.config.out_channels] + correction, -1.0, 1.0)


CONFIGS: dict[Architecture, type[Any]] = {
    "resnet-generator": ResnetGeneratorConfig,
    "unet": UNetConfig,
    "patch-discriminator": PatchDiscriminatorConfig,
}
NETWORKS: dict[Architecture, type[nn.Module]] = {
    "resnet-generator": ResnetGenerator,
    "unet": UNet,
    "patch-discriminator": PatchDiscriminator,
}


class ImagePool:
    """A history of generated images for the discriminator (Shrivastava et al., CVPR 2017).

    Until full, every image is stored and returned. Then each query returns, with
    probability one half, a stored image (replaced by the new one) instead of the new one,
    so the discriminator also scores older generator outputs. ``size`` 0 turns it off.
    """

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size = size
        self.generator = generator
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape as ``images``, partly drawn from the history."""
        if self.size == 0:
            return images
        returned = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                returned.append(image)
                continue
            if torch.rand(1, generator=self.generator).item() < 0.5:
                slot = int(torch.randint(self.size, (1,), generator=self.generator).item())
                returned.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                returned.append(image)
        return torch.cat(returned, dim=0)
