"""MONAI's ``AttentionUnet`` as a medico plugin, declared as a plain mapping (no medico import, no wrapper module).

medico reads the mapping through the ``medico.models`` entry point in ``pyproject.toml``: it normalises the
frames with ImageNet's mean and standard deviation, pads every input to a multiple of 8 (three stride-2 levels)
and crops the logits back, and trains with these defaults unless told otherwise.
"""

from __future__ import annotations

from monai.networks.nets import AttentionUnet


def build(channels: tuple[int, ...] = (16, 32, 64, 128), dropout: float = 0.0) -> AttentionUnet:
    """MONAI's 2-D Attention U-Net, RGB in, one logit channel out (no activation: medico applies the sigmoid)."""
    strides = (2,) * (len(channels) - 1)
    return AttentionUnet(
        spatial_dims=2, in_channels=3, out_channels=1, channels=channels, strides=strides, dropout=dropout
    )


PLUGIN = {
    "build": build,
    "description": "MONAI AttentionUnet (Oktay et al. 2018), 2-D, channels 16-128",
    "normalization": "imagenet",
    "multiple": 8,
    "defaults": {"input_size": 128, "batch_size": 8, "lr": 1e-3},
}
