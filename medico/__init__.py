"""medico: a harness for polyp-segmentation challenges (MediaEval 2020 Medico)."""

import os
from importlib.metadata import PackageNotFoundError, version

# albumentations asks PyPI for its latest version at import unless told not to: a network request (up to 2 s) on
# every command, and a warning on stderr on an offline machine. A user who wants the check can set it to 0.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from medico.plugins import create_model, get_plugin, list_models, register_model

try:
    __version__ = version("medico")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "create_model", "get_plugin", "list_models", "register_model"]
