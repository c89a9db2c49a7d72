"""medico: a harness for polyp-segmentation challenges (MediaEval 2020 Medico)."""

from importlib.metadata import PackageNotFoundError, version

from medico.plugins import create_model, get_plugin, list_models, register_model

try:
    __version__ = version("medico")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "create_model", "get_plugin", "list_models", "register_model"]
