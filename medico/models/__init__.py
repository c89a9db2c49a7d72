"""Built-in model plugins; importing this package registers them."""

from medico.models.attunet import AttentionUNet, attunet
from medico.models.unet import BRAIN_MRI, UNet, unet

__all__ = ["BRAIN_MRI", "AttentionUNet", "UNet", "attunet", "unet"]
