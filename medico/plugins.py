"""Model plugins: the interface, the registry and the three ways of registering one.

A plugin is a name plus a builder ``build(**options) -> torch.nn.Module`` whose module maps a float tensor
``(B, 3, H, W)`` normalised to [-1, 1] to logits ``(B, 1, H, W)`` (no sigmoid inside). Plugins come from

1. ``@register_model("name")`` inside a module that is imported (it also declares training defaults and weights);
2. the entry-point group ``medico.models`` of any installed distribution, loaded lazily, one failure never
   hiding the other plugins. medico's own built-ins (:mod:`medico.models`, decorated too) come this way, from
   medico's own entry points, loaded first: the registry never imports a model, only medico's own entry points
   make a plugin ``built-in``, and no other plugin takes a built-in's name;
3. a spec ``path/to/file.py:builder`` or ``package.module:builder`` given where a model name is expected.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medico.errors import MedicoError, describe_error
from medico.weights import WeightsSource

if TYPE_CHECKING:  # torch is imported with the models: `medico leaderboard` and friends start without it
    from torch import nn

__all__ = [
    "BUILT_IN",
    "DECLARATION_KEYS",
    "NORMALIZATIONS",
    "InputSpec",
    "ENTRY_POINT_GROUP",
    "ModelPlugin",
    "PluginError",
    "TrainingDefaults",
    "UnknownModelError",
    "canonical_spec",
    "create_model",
    "get_plugin",
    "is_model",
    "list_models",
    "plugin_errors",
    "plugin_from_mapping",
    "register_model",
]

ENTRY_POINT_GROUP = "medico.models"
BUILT_IN = "built-in"
"""The origin of medico's own plugins (the task 2 image installs only medico, so it runs only these)."""

Builder = Callable[..., "nn.Module"]


class PluginError(MedicoError):
    """A plugin could not be imported, found or built."""


class UnknownModelError(PluginError, LookupError):
    """A model name that no plugin answers to."""


@dataclass(frozen=True)
class TrainingDefaults:
    """Training options a plugin proposes; ``baselines/<model>.toml`` and the command line override them.

    The defaults are the source paper's recipe (R. Khadka, MediaEval 2020, CEUR-WS Vol-2882), the one place medico
    writes it down: every run, baseline and benchmark reads it from here.
    """

    input_size: int = 256  # paper: images resized to 256x256
    batch_size: int = 16  # paper
    lr: float = 1e-4  # paper: Adam, learning rate 1e-4
    weight_decay: float = 1e-5  # paper: L2 regularisation (its strength: ours)
    epochs: int = 50  # ours: an upper bound; early stopping usually ends a run sooner

    def __post_init__(self) -> None:
        """Each default checked (type and range) and normalised as the same setting from a config file is."""
        from medico.runs.config import check_setting  # the one rule for a setting (imported here: it needs torch)

        for setting in fields(self):
            value = check_setting(setting.name, getattr(self, setting.name), "plugin defaults")
            object.__setattr__(self, setting.name, value)


NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "symmetric": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1]: medico's own convention
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # [0, 1]
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision, timm and smp encoders
}
"""Named input normalisations as ``(mean, std)`` per RGB channel over pixel values scaled to [0, 1]: a model sees
``(value / 255 - mean) / std``."""

MAX_MULTIPLE = 1024
MIN_STD = 1 / 255
"""The smallest std a normalisation may declare: one step of an 8-bit pixel (a smaller one amplifies noise more than
255 times, and a std near zero makes every input infinite)."""


@dataclass(frozen=True)
class InputSpec:
    """What a plugin's model expects of its input beyond medico's convention, applied by medico on the device
    (:func:`medico.engine.adapter.adapt`): a normalisation (a name of :data:`NORMALIZATIONS`, or ``(mean, std)``
    over [0, 1]) and the multiple its height and width must be (medico pads up to it and crops the logits back).
    """

    normalization: str | tuple[tuple[float, ...], tuple[float, ...]] = "symmetric"
    multiple: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.normalization, str):
            if self.normalization not in NORMALIZATIONS:
                raise PluginError(
                    f"normalization: expected one of {', '.join(NORMALIZATIONS)} or (mean, std), "
                    f"got {self.normalization!r}"
                )
        else:
            try:
                mean, std = (tuple(float(v) for v in values) for values in self.normalization)
            except (TypeError, ValueError):
                raise PluginError(
                    f"normalization: expected a name or (mean, std) of three numbers each, got {self.normalization!r}"
                ) from None
            if len(mean) != 3 or len(std) != 3 or not all(0 <= m <= 1 for m in mean) or not all(
                MIN_STD <= s <= 1 for s in std
            ):  # 0-255 statistics would squash every image to one value; a tiny std blows it up to inf
                raise PluginError(
                    f"normalization: expected three means from 0 to 1 and three stds from 1/255 to 1 (statistics of "
                    f"pixel values scaled to [0, 1]: divide 0-255 ones by 255), got {self.normalization!r}"
                )
            object.__setattr__(self, "normalization", (mean, std))
        integer = isinstance(self.multiple, int) and not isinstance(self.multiple, bool)
        if not integer or not 1 <= self.multiple <= MAX_MULTIPLE:
            raise PluginError(f"multiple: expected an integer from 1 to {MAX_MULTIPLE}, got {self.multiple!r}")

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` per channel over pixel values scaled to [0, 1]."""
        if isinstance(self.normalization, str):
            return NORMALIZATIONS[self.normalization]
        return self.normalization

    def affine(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(scale, shift)`` per channel taking medico's [-1, 1] input to this normalisation: ``x * scale + shift``."""
        mean, std = self.mean_std()
        return tuple(0.5 / s for s in std), tuple((0.5 - m) / s for m, s in zip(mean, std))

    def describe(self) -> str:
        """In words, for ``medico models``: ``ImageNet mean/std, sides multiple of 32``."""
        if isinstance(self.normalization, str):
            name = {"symmetric": "[-1, 1]", "unit": "[0, 1]", "imagenet": "ImageNet mean/std"}[self.normalization]
        else:
            name = "mean {} std {}".format(*self.normalization)
        return name + (f", sides multiple of {self.multiple}" if self.multiple > 1 else "")


@dataclass(frozen=True)
class ModelPlugin:
    """A registered model: how to build it, what it proposes for training, what it expects of its input, where it
    came from."""

    name: str
    builder: Builder
    description: str
    defaults: TrainingDefaults = field(default_factory=TrainingDefaults)
    pretrained: Mapping[str, WeightsSource] = field(default_factory=dict)
    origin: str = BUILT_IN
    input: InputSpec = field(default_factory=InputSpec)
    distribution: str | None = None
    """The installed distribution whose entry point registered the plugin (None for decorators and specs)."""

    def build(self, **options: Any) -> nn.Module:
        """Build the model; options the builder does not accept, and any error it raises, are reported with the
        plugin's name and origin (an error of medico's own, such as missing weights, passes unchanged)."""
        try:
            inspect.signature(self.builder).bind(**options)
        except TypeError as error:
            raise PluginError(
                f"model {self.name!r} does not accept options {options}: {error}; "
                f"its parameters are {self.parameters}"
            ) from error
        from torch import nn

        try:
            model = self.builder(**options)
        except MedicoError:
            raise
        except Exception as error:  # a plugin's builder may raise anything: report it as the plugin's
            raise PluginError(
                f"model {self.name!r} ({self.origin}) could not be built with options {options}: "
                f"{describe_error(error)}"
            ) from error
        if not isinstance(model, nn.Module):
            raise PluginError(
                f"model {self.name!r} ({self.origin}): builder returned {type(model).__name__}, "
                "expected a torch.nn.Module"
            )
        from medico.engine.adapter import adapt

        return adapt(model, self.input, f"model {self.name!r} ({self.origin})")

    def provenance(self) -> dict[str, Any]:
        """Where the plugin's code comes from, for a run's ``environment.json`` and a submission's manifest: its
        origin, the installed distribution holding its builder and its version, and the installed versions of the
        libraries that distribution requires (smp, timm, monai...); a file plugin has no distribution, and one whose
        metadata cannot be read is recorded without it."""
        module = getattr(self.builder, "__module__", "") or ""
        record: dict[str, Any] = {"name": self.name, "origin": self.origin, "module": module}
        if self.distribution:
            names = [self.distribution]
        else:
            names = [] if self.origin.startswith("file ") else _distributions_of(module)
        installed = _installed(names[0]) if names else None
        if installed is None:
            return {**record, "distribution": None}
        requires = {}
        for requirement in installed.requires:
            if "extra ==" in requirement:  # an optional extra: not what the plugin builds on
                continue
            library = re.match(r"[A-Za-z0-9_.\-]+", requirement.strip())
            if library is not None:
                found = _installed(library.group(0))
                requires[library.group(0)] = found.version if found is not None else None
        return {**record, "distribution": installed.name, "version": installed.version, "requires": requires}

    def parameter_count(self, **options: Any) -> int:
        """How many parameters the model built with ``options`` has, counted on the meta device (nothing allocated;
        a builder that downloads weights may still try to)."""
        import torch

        with torch.device("meta"):
            return sum(p.numel() for p in self.build(**options).parameters())

    def option_types(self) -> dict[str, Any]:
        """Each keyword option's type as the builder declares it: its annotation, else its default's type (options
        with neither are absent)."""
        try:
            hints = typing.get_type_hints(self.builder)
        except Exception:  # annotations naming what cannot be imported here: fall back to the defaults
            hints = {}
        types_ = {name: type(default) for name, default in self.parameters.items() if default is not None}
        return {**types_, **{name: hint for name, hint in hints.items() if name in self.parameters}}

    @property
    def parameters(self) -> dict[str, Any]:
        """The builder's keyword options and their defaults (what ``build(**options)`` accepts)."""
        signature = inspect.signature(self.builder)
        return {
            name: (None if p.default is inspect.Parameter.empty else p.default)
            for name, p in signature.parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }


def _distributions_of(module: str) -> list[str]:
    """The installed distributions providing ``module``'s top-level package (none for a file or a local module, nor
    when some installed distribution's metadata cannot be read)."""
    try:
        return importlib.metadata.packages_distributions().get(module.partition(".")[0], [])
    except Exception:  # another package's broken metadata: no provenance rather than no run
        return []


@dataclass(frozen=True)
class _Installed:
    """What an installed distribution's metadata declares."""

    name: str
    version: str | None
    requires: list[str]


def _installed(distribution: str | importlib.metadata.Distribution | None) -> _Installed | None:
    """The name, version and requirements of an installed distribution (by name, or as an entry point's); None when
    it is absent, or its metadata is unreadable (not UTF-8, no name...): third-party files never stop a command."""
    if distribution is None:
        return None
    try:
        if isinstance(distribution, str):
            distribution = importlib.metadata.distribution(distribution)
        metadata = distribution.metadata
        name = metadata["Name"]
        return _Installed(name, metadata["Version"], list(distribution.requires or [])) if name else None
    except Exception:  # any failure reading a third party's metadata
        return None


_registry: dict[str, ModelPlugin] = {}
_by_builder: dict[Builder, ModelPlugin] = {}
_plugin_errors: dict[str, str] = {}
_spec_plugins: dict[str, ModelPlugin] = {}
_entry_points_loaded = False


def register_model(
    name: str,
    *,
    description: str | None = None,
    defaults: TrainingDefaults | None = None,
    pretrained: Mapping[str, WeightsSource] | None = None,
    normalization: str | tuple[tuple[float, ...], tuple[float, ...]] = "symmetric",
    multiple: int = 1,
) -> Callable[[Builder], Builder]:
    """Register ``builder`` under ``name``; returns the builder unchanged.

    Args:
        name: the name users type (``medico run NAME``).
        description: one line for ``medico models``; defaults to the builder docstring's first line.
        defaults: proposed training options.
        pretrained: named weight sources, e.g. ``{"brain-mri": WeightsSource(url=..., sha256=...)}``.
        normalization: the input normalisation the model expects (see :class:`InputSpec`).
        multiple: the multiple the input's height and width must be (medico pads and crops for it).
    """

    def decorate(builder: Builder) -> Builder:
        doc = (inspect.getdoc(builder) or "").strip().splitlines()
        module = getattr(builder, "__module__", "") or ""
        plugin = ModelPlugin(
            name=name,
            builder=builder,
            description=description or (doc[0] if doc else ""),
            defaults=defaults or TrainingDefaults(),
            pretrained=dict(pretrained or {}),
            origin=f"module {module}",  # medico's own entry points make it built-in, nothing else
            input=InputSpec(normalization, multiple),
        )
        _add(plugin)
        return builder

    return decorate


def _add(plugin: ModelPlugin) -> None:
    """Register ``plugin`` under its name; a name a built-in holds is never taken by another plugin (a third-party
    ``unet`` would otherwise replace medico's or not depending on the order packages are found in)."""
    held = _registry.get(plugin.name)
    if held is not None and held.origin == BUILT_IN and plugin.origin != BUILT_IN:
        raise PluginError(
            f"model {plugin.name!r} ({plugin.origin}): {plugin.name!r} is the name of a medico built-in model; "
            "register the plugin under another name"
        )
    _registry[plugin.name] = plugin
    _by_builder[plugin.builder] = plugin


def _distribution_name(entry_point: importlib.metadata.EntryPoint) -> str | None:
    installed = _installed(getattr(entry_point, "dist", None))
    return installed.name if installed is not None else None


def _load_entry_points() -> None:
    """Import every ``medico.models`` entry point once, medico's own first; a broken one is recorded, not raised."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    found = [(entry_point, _distribution_name(entry_point)) for entry_point in
             importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]  # each distribution's metadata read once
    for entry_point, distribution in sorted(found, key=lambda pair: _origin(*pair) != BUILT_IN):
        origin = _origin(entry_point, distribution)
        try:
            builder = entry_point.load()
        except (Exception, SystemExit) as error:  # a plugin's import may raise anything, exit too: report it, go on
            _plugin_errors[entry_point.name] = f"{origin}: {type(error).__name__}: {error}"
            continue
        try:
            if isinstance(builder, Mapping):
                plugin = plugin_from_mapping(builder, name=entry_point.name, origin=origin)
            elif callable(builder):
                plugin = _plugin_for(builder, name=entry_point.name, origin=origin)
            else:
                raise PluginError(f"{entry_point.value} is neither callable nor a mapping declaring a plugin")
            _add(replace(plugin, distribution=distribution))
        except MedicoError as error:
            _plugin_errors[entry_point.name] = f"{origin}: {error}"
        except (Exception, SystemExit) as error:  # reading what a plugin declares runs its code too (a Mapping's)
            _plugin_errors[entry_point.name] = f"{origin}: reading {entry_point.value}: {describe_error(error)}"


DECLARATION_KEYS = ("build", "description", "defaults", "pretrained", "normalization", "multiple")
"""What a mapping an entry point names may declare (only ``build`` is required)."""


def plugin_from_mapping(declaration: Mapping[str, Any], *, name: str, origin: str) -> ModelPlugin:
    """The plugin a plain mapping declares, so that a package registers a fully described plugin without importing
    medico: ``{"build": build, "description": "...", "defaults": {"input_size": 320, ...}, "pretrained":
    {"name": {"url": ..., "sha256": ...}}, "normalization": "imagenet", "multiple": 32}``.

    Raises:
        PluginError: an unknown key, no callable ``build``, or a value of the wrong kind (named in the message).
    """
    unknown = sorted(set(declaration) - set(DECLARATION_KEYS))
    if unknown:
        raise PluginError(
            f"unknown keys {', '.join(map(repr, unknown))}; a plugin declares {', '.join(DECLARATION_KEYS)}"
        )
    builder = declaration.get("build")
    if not callable(builder):
        raise PluginError(f"'build' must be the model's builder (a callable), got {type(builder).__name__}")
    defaults = declaration.get("defaults") or {}
    known = {f.name for f in fields(TrainingDefaults)}
    if not isinstance(defaults, Mapping) or not set(defaults) <= known:
        raise PluginError(f"'defaults' must be a mapping of {', '.join(sorted(known))}, got {defaults!r}")
    try:
        pretrained = {str(k): WeightsSource(**v) for k, v in (declaration.get("pretrained") or {}).items()}
    except (TypeError, ValueError, AttributeError) as error:
        raise PluginError(
            f"'pretrained' must map names to {{'url': ..., 'sha256': ...}} or {{'path': ...}}: {error}"
        ) from None
    plugin = _plugin_for(builder, name=name, origin=origin)
    description = declaration.get("description")
    return replace(
        plugin,
        description=str(description) if description is not None else plugin.description,
        defaults=TrainingDefaults(**defaults),
        pretrained=pretrained,
        input=InputSpec(declaration.get("normalization", "symmetric"), declaration.get("multiple", 1)),
    )


def _origin(entry_point: importlib.metadata.EntryPoint, distribution: str | None) -> str:
    """``built-in`` for an entry point of medico's own distribution into medico's own modules; else its package.
    The value is compared, not parsed: a malformed one fails in ``load()``, where it is reported by name."""
    own = distribution == "medico" and entry_point.value.startswith(("medico.", "medico:"))
    return BUILT_IN if own else f"entry point of package {distribution or 'an unknown distribution'}"


def _plugin_for(builder: Builder, *, name: str, origin: str) -> ModelPlugin:
    """The registered plugin of ``builder`` renamed, or a new plugin with default training options."""
    known = _by_builder.get(builder)
    if known is not None:
        return replace(known, name=name, origin=origin)
    doc = (inspect.getdoc(builder) or "").strip().splitlines()
    return ModelPlugin(name=name, builder=builder, description=doc[0] if doc else "", origin=origin)


def list_models() -> list[str]:
    """Names of every registered plugin (built-in and entry points), sorted."""
    _load_entry_points()
    return sorted(_registry)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered plugin name (specs with ``:`` are not looked up here)."""
    _load_entry_points()
    return name in _registry


def plugin_errors() -> dict[str, str]:
    """Entry points that failed to load: name -> where it came from and the error."""
    _load_entry_points()
    return dict(_plugin_errors)


def get_plugin(name_or_spec: str) -> ModelPlugin:
    """The plugin for a registered name, or for a ``file.py:builder`` / ``package.module:builder`` spec.

    Raises:
        UnknownModelError: no plugin has that name (the message lists the known ones and close matches).
        PluginError: the plugin failed to load, or the spec does not point at a callable.
    """
    _load_entry_points()
    if name_or_spec in _registry:
        return _registry[name_or_spec]
    if name_or_spec in _plugin_errors:
        raise PluginError(f"model {name_or_spec!r} failed to load: {_plugin_errors[name_or_spec]}")
    if ":" in name_or_spec:
        key = canonical_spec(name_or_spec)  # a file by its absolute path: the same file, from any folder
        if key not in _spec_plugins:  # a spec's file or module is imported once per process, as modules are
            _spec_plugins[key] = _plugin_from_spec(name_or_spec)
        return _spec_plugins[key]
    known = sorted(_registry)
    close = difflib.get_close_matches(name_or_spec, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name_or_spec!r}.{hint} Known models: {', '.join(known)}. "
        "A one-off plugin can be given as path/to/file.py:builder or package.module:builder."
    )


def canonical_spec(name_or_spec: str) -> str:
    """The model as a run records it: a file spec with the file's absolute, resolved path (so that it resolves,
    to the same file, from any folder); names and module specs unchanged. Imports no spec's code."""
    _load_entry_points()
    target, _, attribute = name_or_spec.rpartition(":")
    if name_or_spec in _registry or not target or not attribute or not _is_file_target(target):
        return name_or_spec
    return f"{Path(target).resolve()}:{attribute}"


def _is_file_target(target: str) -> bool:
    """Whether the part of a spec before ``:`` names a Python file rather than a module."""
    return target.endswith(".py") or Path(target).exists()


def _plugin_from_spec(spec: str) -> ModelPlugin:
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise PluginError(f"model spec {spec!r}: expected path/to/file.py:builder or package.module:builder")
    path = Path(target)
    if _is_file_target(target):
        module = _import_file(path, spec)
        origin = f"file {path}"
    else:
        try:
            module = importlib.import_module(target)
        except Exception as error:
            raise PluginError(
                f"model spec {spec!r}: cannot import {target!r}: {type(error).__name__}: {error}"
            ) from error
        origin = f"module {target}"
    builder = getattr(module, attribute, None)
    if builder is None or not callable(builder):
        raise PluginError(f"model spec {spec!r}: {target} has no callable named {attribute!r}")
    return _plugin_for(builder, name=spec, origin=origin)


def _import_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise PluginError(f"model spec {spec!r}: file {path} does not exist")
    module_name = f"medico_user_plugin_{abs(hash(path.resolve()))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"model spec {spec!r}: {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise PluginError(f"model spec {spec!r}: importing {path} raised {type(error).__name__}: {error}") from error
    return module


def create_model(name_or_spec: str, **options: Any) -> nn.Module:
    """Build the model of a registered name or spec with the given builder options."""
    return get_plugin(name_or_spec).build(**options)
