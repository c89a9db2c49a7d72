"""The resolved configuration of a training run, and where each value came from.

Layers, later ones winning: the plugin's :class:`~medico.plugins.TrainingDefaults`, the default team
(``$MEDICO_TEAM``, else the login name: :func:`medico.leaderboard.team.default_team`), ``baselines/<model>.toml``,
the dataset's hints (the synthetic set asks for small inputs and few epochs), a ``--config FILE.toml``, the
command line. A TOML layer holds flat training keys (``epochs = 30``) and an ``[options]`` table of builder
options (``init_features = 8``). The resolved config and each key's source are written into the run record.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from medico.baselines import baseline_file
from medico.data.dataset import DataError
from medico.data.splits import SPLIT_NAMES, split_folder_files
from medico.engine.averaging import AVERAGES, DEFAULT_EMA_DECAY
from medico.engine.budget import MAX_SECONDS, parse_duration
from medico.engine.runtime import PRECISION_CHOICES
from medico.errors import MedicoError
from medico.leaderboard.participant import check_team_name
from medico.leaderboard.team import default_team
from medico.plugins import ModelPlugin, TrainingDefaults, canonical_spec
from medico.runs.folder import check_run_name
from medico.runs.tracking import check_tracker

__all__ = [
    "COMMAND_LINE",
    "MAX_BATCH",
    "MAX_COUNT",
    "MAX_INPUT_SIZE",
    "MAX_SEED",
    "MAX_WORKERS",
    "RESUMABLE_KEYS",
    "ConfigError",
    "Layer",
    "RunConfig",
    "RunOptions",
    "check_setting",
    "check_stored_types",
    "parse_option",
    "read_layer",
    "resolve_config",
]

RESUMABLE_KEYS = frozenset(
    {"epochs", "max_time", "device", "precision", "workers", "eval_batch_size", "team", "tracker"}
)
"""What ``--resume`` may change: where and how long to go on, never what is being trained."""

COMMAND_LINE = "command line"
"""The label of the command-line layer (messages about its values name the option, ``--input-size``)."""

MAX_INPUT_SIZE = 2048
"""The largest input side: above the largest frames of Kvasir-SEG and Medico 2020 (1920x1072) an input only
upsamples, and one decoded image of that side is already 12 MiB (``--input-size 100000`` asked for 30 GB each)."""

MAX_BATCH = 4096
"""The largest batch: 4096 images of 256 px are 3 GiB of float32 input before any activation, beyond what one
training step of these models fits on a GPU."""

MAX_SEED = 2**32 - 1
"""Seeds run from 0 to 2**32 - 1: the range NumPy's seeding takes (torch's takes it too)."""

MAX_WORKERS = 256
"""More data-loader processes than any one machine has cores to run them."""

MAX_COUNT = 2**31 - 1
"""The largest epoch count or patience: beyond any run, and what every C integer underneath still holds."""


class ConfigError(MedicoError):
    """A config file or option names an unknown key or gives a value of the wrong type."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a run trains and how (the run record's ``config.json``).

    Attributes:
        model: plugin name or ``file.py:builder`` spec.
        options: builder options (``init_features=8``), passed to ``plugin.build``.
        data: dataset folder or zip; None for the built-in synthetic set.
        split: ``auto``, ``medico2020``, ``random`` or a folder holding ``train.txt`` and ``val.txt``.
        epochs, batch_size, input_size, lr, weight_decay: the source paper's knobs (Adam, L2 by weight decay).
        lr_patience, lr_factor, min_lr: ReduceLROnPlateau on validation mIoU.
        early_stopping: epochs without a better validation mIoU before stopping (0: never stop early).
        max_time: a budget of seconds for training, validation included (``30m`` in a file or on the command line);
            the lr then anneals by a cosine to ``min_lr`` at the budget (or at ``epochs``, whichever comes first)
            instead of dropping on plateaus (:mod:`medico.engine.budget`). None: no limit on time.
        average, ema_decay: ``ema`` validates and saves an exponential moving average of the weights with this
            decay (:mod:`medico.engine.averaging`); ``none`` the weights as trained.
        seed: seeds weights, shuffling and augmentation; not the data: the synthetic set and the random split
            stay the same, so runs with different seeds are scored on the same images.
        pretrained: ``brain-mri`` (a plugin's named weights), a path or a URL; None trains from scratch.
        device, precision: ``auto`` picks CUDA when available, else the CPU; precision ``auto`` is bf16
            where the device computes it natively, fp16 on older GPUs, else fp32 (medico.engine.runtime).
        workers: data-loader worker processes; ``auto`` is :func:`medico.data.loader.default_workers` (none on a
            CPU, whose threads already compute; enough on a GPU machine to keep the GPU fed).
        augment: the source paper's augmentations on training images.
        eval_batch_size: images per forward pass during validation.
        team: the leaderboard team name (resolved: ``$MEDICO_TEAM``, else the login name, unless a layer names one).
        name: the run's name, its folder's label (``runs/9-alpha-quick/``) and a way to name it in every command
            (:func:`medico.runs.folder.check_run_name`); None: the folder is labelled by the model.
        tracker: ``none``, ``tensorboard`` or ``mlflow``: where the run's epochs, config and final scores are also
            logged (:mod:`medico.runs.tracking`).
    """

    model: str
    options: dict[str, Any] = field(default_factory=dict)
    data: str | None = None
    split: str = "auto"
    epochs: int = TrainingDefaults.epochs
    batch_size: int = TrainingDefaults.batch_size
    input_size: int = TrainingDefaults.input_size
    lr: float = TrainingDefaults.lr
    weight_decay: float = TrainingDefaults.weight_decay
    lr_patience: int = 5
    lr_factor: float = 0.1
    min_lr: float = 1e-7
    early_stopping: int = 15
    max_time: float | None = None
    average: str = "none"
    ema_decay: float = DEFAULT_EMA_DECAY
    seed: int = 0
    pretrained: str | None = None
    device: str = "auto"
    precision: str = "auto"
    workers: int | str = "auto"
    augment: bool = True
    eval_batch_size: int = 8
    team: str | None = None
    name: str | None = None
    tracker: str = "none"
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (``sources`` included: which layer set each key)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str) -> RunConfig:
        """The config stored in a checkpoint or ``config.json`` (``source``, named in errors), every setting checked
        as a command-line value is (a hostile file is refused, not trained); unknown keys are ignored (newer
        versions)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in names}
        return cls(**{k: v if k not in _TYPES or v is None else check_setting(k, v, source) for k, v in kept.items()})

    def with_resume_overrides(self, given: RunOptions) -> RunConfig:
        """This config with command-line values a resumed run may change; anything else is refused."""
        changed = {k: v for k, v in given.settings().items() if getattr(self, k, None) != v}
        refused = sorted(set(changed) - RESUMABLE_KEYS)
        if refused:
            raise ConfigError(
                f"--resume continues the run as it was configured; it cannot change {', '.join(refused)} "
                f"(only {', '.join(sorted(RESUMABLE_KEYS))}). Start a new run instead."
            )
        sources = {**self.sources, **{k: "command line (resume)" for k in changed}}
        return dataclasses.replace(self, **changed, sources=sources)


@dataclass(frozen=True)
class RunOptions:
    """What ``medico run`` and ``medico train`` were given as options, typed; None (or empty) means not given.

    Both commands build one and :func:`resolve_config` consumes it: the settings are the command-line layer,
    ``builder_options`` (from ``--option KEY=VALUE``) its builder options, and ``config_file`` the ``--config`` layer.
    """

    data: Path | None = None
    split: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    input_size: int | None = None
    lr: float | None = None
    max_time: str | None = None
    average: str | None = None
    ema_decay: float | None = None
    seed: int | None = None
    pretrained: str | None = None
    device: str | None = None
    precision: str | None = None
    workers: int | None = None
    team: str | None = None
    name: str | None = None
    tracker: str | None = None
    builder_options: Mapping[str, Any] = field(default_factory=dict)
    config_file: Path | None = None

    @classmethod
    def from_command_line(cls, option: list[str] | None = None, **values: Any) -> RunOptions:
        """The options of a command: ``option`` holds the ``--option KEY=VALUE`` texts, ``values`` the rest."""
        return cls(builder_options=dict(parse_option(text) for text in option or []), **values)

    def settings(self) -> dict[str, Any]:
        """The settings given (not None), each checked and named by its option (:func:`check_setting` makes the data
        and split folders absolute)."""
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del given["builder_options"], given["config_file"]
        if self.data is not None:
            given["data"] = str(self.data)
        return {key: check_setting(key, value) for key, value in given.items() if value is not None}


_TYPES: dict[str, tuple[type, ...]] = {
    "data": (str,),
    "split": (str,),
    "epochs": (int,),
    "batch_size": (int,),
    "input_size": (int,),
    "lr": (float, int),
    "weight_decay": (float, int),
    "lr_patience": (int,),
    "lr_factor": (float, int),
    "min_lr": (float, int),
    "early_stopping": (int,),
    "max_time": (str, int, float),
    "average": (str,),
    "ema_decay": (float,),
    "seed": (int,),
    "pretrained": (str,),
    "device": (str,),
    "precision": (str,),
    "workers": (int, str),
    "augment": (bool,),
    "eval_batch_size": (int,),
    "team": (str,),
    "name": (str,),
    "tracker": (str,),
}


@dataclass(frozen=True)
class _Range:
    """Where a numeric setting may lie: from ``low`` to ``high``, a bound included unless marked open."""

    low: float
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies in the range (NaN and infinities never do)."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return above and below

    def describe(self, integer: bool) -> str:
        """The range in words: ``an integer from 1 to 2048``, ``a finite number above 0``."""
        kind = "an integer" if integer else "a finite number"
        low, high = (f"{bound:,}" if float(bound).is_integer() else f"{bound:g}" for bound in (self.low, self.high))
        if self.high == math.inf:
            return f"{kind} {'above' if self.open_low else 'of at least'} {low}"
        if self.open_low or self.open_high:
            return f"{kind} strictly between {low} and {high}"
        return f"{kind} from {low} to {high}"


_RANGES: dict[str, _Range] = {
    "epochs": _Range(1, MAX_COUNT),
    "batch_size": _Range(1, MAX_BATCH),
    "input_size": _Range(1, MAX_INPUT_SIZE),
    "lr": _Range(0, open_low=True),
    "weight_decay": _Range(0),
    "lr_patience": _Range(0, MAX_COUNT),
    "lr_factor": _Range(0, 1, open_low=True, open_high=True),
    "min_lr": _Range(0),
    "early_stopping": _Range(0, MAX_COUNT),
    "max_time": _Range(0, MAX_SECONDS, open_low=True),
    "ema_decay": _Range(0, 1, open_low=True, open_high=True),
    "seed": _Range(0, MAX_SEED),
    "workers": _Range(0, MAX_WORKERS),
    "eval_batch_size": _Range(1, MAX_BATCH),
}
_WHY = {
    "input_size": "larger inputs only upsample the largest Kvasir-SEG and Medico frames (1920x1072)",
    "seed": "the seeds NumPy takes",
    "max_time": "seconds, up to a year",
}


@dataclass(frozen=True)
class Layer:
    """One source of settings: a label for the record, training values and builder options."""

    label: str
    values: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def check_setting(key: str, value: Any, source: str = COMMAND_LINE, *, name: str | None = None) -> Any:
    """``value`` for the setting ``key`` checked (known key, type, range) and normalised (floats, absolute data and
    split folders).

    Args:
        key: a :class:`RunConfig` field (``input_size``).
        value: its value from ``source``.
        source: the layer's label (a file's, ``dataset hints``...); the command line's values are named by option.
        name: how the message names the value, when not as its source says (``--batch-size`` of ``medico bench``).

    Raises:
        ConfigError: naming the option or the file and key, what was expected and what was found.
    """
    name = name or (f"--{key.replace('_', '-')}" if source == COMMAND_LINE else f"{source}: {key}")
    if key not in _TYPES:
        raise ConfigError(f"{source}: unknown key {key!r}; known keys: {', '.join(sorted(_TYPES))}, and [options]")
    expected = _check_type(key, value, name)
    if key == "max_time" and isinstance(value, str):
        try:
            value = parse_duration(value)
        except ValueError as error:
            raise ConfigError(f"{name} {error}") from None
    if float in expected:
        value = float(value)
    if key in _RANGES and not isinstance(value, str) and not _RANGES[key].holds(value):
        why = f" ({_WHY[key]})" if key in _WHY else ""
        raise ConfigError(f"{name} must be {_RANGES[key].describe(float not in expected)}{why}, got {value!r}")
    if key == "split" and value not in SPLIT_NAMES:
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"{name} must be {', '.join(SPLIT_NAMES)} or a folder holding train.txt and val.txt; "
                f"{value!r} is neither"
            )
        try:
            split_folder_files(folder)
        except DataError as error:
            raise ConfigError(f"{name}: {error}") from error
        value = _absolute(value, name)
    if key == "data":
        value = _absolute(value, name)
    if key == "workers" and isinstance(value, str) and value != "auto":
        raise ConfigError(f"{name} must be auto or a number of processes, got {value!r}")
    if key == "average" and value not in AVERAGES:
        raise ConfigError(f"{name} must be one of {', '.join(AVERAGES)}, got {value!r}")
    if key == "precision" and value not in PRECISION_CHOICES:
        raise ConfigError(f"{name} must be one of {', '.join(PRECISION_CHOICES)}, got {value!r}")
    if key == "team":
        check_team_name(value, name)  # the leaderboard entry's rule, asked before training rather than after it
    if key == "name":
        check_run_name(value, name)  # before the folder it labels is made
    if key == "tracker":
        check_tracker(value, name)  # a missing package is refused now, not after the run folder is made
    return value


def _absolute(path: str, name: str) -> str:
    """``path`` absolute, links resolved, so that the run record finds it again from any folder."""
    try:
        return str(Path(path).expanduser().resolve())
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop of symbolic links (Python before 3.13)
        raise ConfigError(
            f"{name} {path!r}: expected a folder or zip, but the path cannot be resolved: {error}"
        ) from None


def _check_type(key: str, value: Any, name: str) -> tuple[type, ...]:
    """The types setting ``key`` may have, after refusing ``value`` when it has none of them."""
    expected = _TYPES[key]
    # bool is an int in Python: refuse `epochs = true` and accept only real booleans for `augment`.
    if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
        names = " or ".join(t.__name__ for t in expected)
        raise ConfigError(f"{name} must be {names}, got {reprlib.repr(value)} ({type(value).__name__})")
    return expected


def check_stored_types(values: Mapping[str, Any], source: str) -> None:
    """Refuse a stored config (a checkpoint's) whose settings are not of the types :class:`RunConfig` declares.

    Only types: what reads a stored setting may need no more (``evaluate`` reads ``data`` and ``split``, and a split
    folder may be gone), and ``--resume`` checks every setting in full (:meth:`RunConfig.from_dict`).
    """
    for key, value in values.items():
        if key in _TYPES and value is not None:
            _check_type(key, value, f"{source}: {key}")


def _check_option(source: str, plugin: ModelPlugin, key: str, value: Any) -> Any:
    """A builder option's value, converted to the type the builder declares for it (its annotation, else its
    default's type): ``False`` or ``yes`` for a bool, ``16,32,64`` for a tuple of ints; refused when it is none of
    them or not finite."""
    name = f"--option {key}" if source == COMMAND_LINE else f"{source}: [options] {key}"
    expected = plugin.option_types().get(key)
    try:
        value = _as_type(value, expected) if expected is not None else value
    except (TypeError, ValueError):
        default = plugin.parameters.get(key)
        raise ConfigError(
            f"{name} must be {_type_name(expected)} (model {plugin.name!r}, default {default!r}), "
            f"got {reprlib.repr(value)} ({type(value).__name__})"
        ) from None
    values = value if isinstance(value, tuple | list) else [value]
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return value


_TRUE, _FALSE = frozenset({"true", "yes", "on", "1"}), frozenset({"false", "no", "off", "0"})


def _as_type(value: Any, expected: Any) -> Any:
    """``value`` as ``expected`` (bool, int, float, str, a tuple or list of them, ``X | None``, or one of a
    ``Literal``'s choices); a TypeError or ValueError when it cannot be, losslessly."""
    origin, arguments = typing.get_origin(expected), typing.get_args(expected)
    if origin is typing.Literal:  # one of the choices, each converted as its own type (``mode=b``, ``depth=4``)
        for choice in arguments:
            with contextlib.suppress(TypeError, ValueError):
                if type(converted := _as_type(value, type(choice))) is type(choice) and converted == choice:
                    return choice
        raise ValueError(value)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none" and type(None) in arguments):
            return None
        for member in (a for a in arguments if a is not type(None)):
            with contextlib.suppress(TypeError, ValueError):
                return _as_type(value, member)
        raise ValueError(value)
    if origin in (tuple, list, collections.abc.Sequence):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise TypeError(value)
        item_type = arguments[0] if arguments else Any
        converted = [_as_type(item.strip() if isinstance(item, str) else item, item_type) for item in items]
        return list(converted) if origin is list else tuple(converted)
    if expected is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(value)
        return int(value)
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(value)
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    return value  # another annotation: passed as given, for the builder to judge


def _type_name(expected: Any) -> str:
    """``int``, ``tuple[int, ...]``, ``Optional[int]``, ``Literal['a', 'b']``: as the annotation reads."""
    if typing.get_args(expected):
        return str(expected).replace("typing.", "")
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")


def read_layer(path: Path, label: str | None = None) -> Layer:
    """A TOML file's settings: flat training keys and an ``[options]`` table of builder options."""
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from error
    except ValueError as error:  # TOMLDecodeError, UnicodeDecodeError, and tomllib's limit on huge integers
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from error
    options = document.pop("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{label}: [options] must be a table of builder options, got {options!r}")
    return Layer(label, {k: check_setting(k, v, label) for k, v in document.items()}, dict(options))


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from ``--option``; the value is read as a TOML value (8, 0.5, true, "x"), else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ConfigError(
            f"--option {text!r}: expected KEY=VALUE with KEY a builder option name (e.g. init_features=8)"
        )
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except ValueError:  # no TOML value (or one tomllib refuses, a 5000-digit integer): the text as given
        value = raw.strip()
    return key, value


def resolve_config(
    model: str,
    plugin: ModelPlugin,
    *,
    dataset_hints: Mapping[str, Any] | None = None,
    given: RunOptions | None = None,
) -> RunConfig:
    """Merge the layers (plugin, default team, baseline file, dataset hints, config file, command line) into a
    RunConfig.

    Args:
        model: the name or spec the user typed (a file spec is recorded with its absolute path).
        plugin: its plugin (gives the defaults).
        dataset_hints: the dataset's recommended settings (``input_size``, ``epochs``, ``batch_size``...).
        given: what the command line gave (settings, ``--option`` builder options, ``--config`` file).
    """
    given = given or RunOptions()
    layers = [Layer(f"plugin {plugin.name} defaults", dataclasses.asdict(plugin.defaults))]  # checked as declared
    team = default_team()  # its origin is the layer's label: config.json and the run's output say where it came from
    layers.append(Layer(team.origin, {"team": team.name}))
    baseline = baseline_file(f"{model}.toml") if ":" not in model else None
    if baseline is not None:
        layers.append(read_layer(*baseline))
    if dataset_hints:
        hints = {k: check_setting(k, v, "dataset hints") for k, v in dataset_hints.items()}
        layers.append(Layer("dataset hints", hints))
    if given.config_file is not None:
        layers.append(read_layer(given.config_file, f"--config {given.config_file}"))
    layers.append(Layer(COMMAND_LINE, given.settings(), dict(given.builder_options)))

    values: dict[str, Any] = {}
    merged_options: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.values.items():
            values[key] = value
            sources[key] = layer.label
        for key, value in layer.options.items():
            merged_options[key] = _check_option(layer.label, plugin, key, value)
            sources[f"options.{key}"] = layer.label
    return RunConfig(model=canonical_spec(model), options=merged_options, sources=sources, **values)
