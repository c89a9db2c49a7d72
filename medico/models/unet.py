"""The brain-MRI U-Net of mateuszbuda/brain-segmentation-pytorch, returning logits.

Same layers and state_dict keys as the original (``encoder1.enc1conv1.weight`` ... ``conv.bias``), so that its
published checkpoint ``unet-e012d006.pt`` loads with ``strict=True``. Two differences, both deliberate:
the original applies ``torch.sigmoid`` to its output, ours returns logits (losses and thresholds are applied
outside the model, in a numerically stable form); and the original needs height and width divisible by 16,
ours pads the input (replicating the border) to the next multiple of 16 and crops the logits back, so any
size works and the output always has the input's height and width.
"""

from __future__ import annotations

import torch
from torch import nn

from medico.models.blocks import conv_block, pad_to_multiple
from medico.plugins import TrainingDefaults, register_model
from medico.weights import WeightsSource

__all__ = ["BRAIN_MRI", "UNet", "unet"]

BRAIN_MRI = WeightsSource(
    url="https://github.com/mateuszbuda/brain-segmentation-pytorch/releases/download/v1.0/unet-e012d006.pt",
    sha256="e012d006",
)
"""The brain-MRI U-Net (Buda et al. 2019) as published on torch hub; the hash is the file name's prefix."""

STRIDE = 16
"""Four 2x2 poolings: height and width must be multiples of 16 inside the network."""


class UNet(nn.Module):
    """U-Net: four encoder blocks, a bottleneck, four decoder blocks with transposed-conv upsampling."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, init_features: int = 32) -> None:
        super().__init__()
        f = init_features
        self.encoder1 = conv_block(in_channels, f, name="enc1")
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.encoder2 = conv_block(f, f * 2, name="enc2")
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.encoder3 = conv_block(f * 2, f * 4, name="enc3")
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.encoder4 = conv_block(f * 4, f * 8, name="enc4")
        self.pool4 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.bottleneck = conv_block(f * 8, f * 16, name="bottleneck")
        self.upconv4 = nn.ConvTranspose2d(f * 16, f * 8, kernel_size=2, stride=2)
        self.decoder4 = conv_block(f * 8 * 2, f * 8, name="dec4")
        self.upconv3 = nn.ConvTranspose2d(f * 8, f * 4, kernel_size=2, stride=2)
        self.decoder3 = conv_block(f * 4 * 2, f * 4, name="dec3")
        self.upconv2 = nn.ConvTranspose2d(f * 4, f * 2, kernel_size=2, stride=2)
        self.decoder2 = conv_block(f * 2 * 2, f * 2, name="dec2")
        self.upconv1 = nn.ConvTranspose2d(f * 2, f, kernel_size=2, stride=2)
        self.decoder1 = conv_block(f * 2, f, name="dec1")
        self.conv = nn.Conv2d(f, out_channels, kernel_size=1)

    def skip(self, level: int, encoded: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        """What the decoder at ``level`` (4 = deepest) concatenates from the encoder: here, all of it."""
        return encoded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, STRIDE)
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.pool1(enc1))
        enc3 = self.encoder3(self.pool2(enc2))
        enc4 = self.encoder4(self.pool3(enc3))
        bottleneck = self.bottleneck(self.pool4(enc4))
        # Concatenation order (decoder, encoder) is the original's: the decoder weights depend on it.
        up4 = self.upconv4(bottleneck)
        dec4 = self.decoder4(torch.cat((up4, self.skip(4, enc4, up4)), dim=1))
        up3 = self.upconv3(dec4)
        dec3 = self.decoder3(torch.cat((up3, self.skip(3, enc3, up3)), dim=1))
        up2 = self.upconv2(dec3)
        dec2 = self.decoder2(torch.cat((up2, self.skip(2, enc2, up2)), dim=1))
        up1 = self.upconv1(dec2)
        dec1 = self.decoder1(torch.cat((up1, self.skip(1, enc1, up1)), dim=1))
        return self.conv(dec1)[..., :height, :width]


@register_model(
    "unet",
    description="U-Net of the brain-MRI model (Buda et al. 2019), init_features 32; the baseline",
    defaults=TrainingDefaults(),
    pretrained={"brain-mri": BRAIN_MRI},
)
def unet(in_channels: int = 3, out_channels: int = 1, init_features: int = 32) -> UNet:
    """U-Net with the brain-MRI model's layers and key names, returning logits."""
    return UNet(in_channels=in_channels, out_channels=out_channels, init_features=init_features)
