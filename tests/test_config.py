"""The run configuration: layers in order, each value's source recorded, bad files and options refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from medico.baselines import baseline_file

from medico.errors import MedicoError
from medico.plugins import get_plugin
from medico.runs.config import ConfigError, RunConfig, RunOptions, parse_option, read_layer, resolve_config


@pytest.mark.parametrize("model", ["unet", "attunet"])
def test_the_baselines_train_with_the_source_papers_recipe_at_the_measured_lr_and_their_own_width(model: str) -> None:
    config = resolve_config(model, get_plugin(model))
    assert (config.input_size, config.batch_size, config.weight_decay) == (256, 16, 1e-5)
    assert config.sources["input_size"] == f"plugin {model} defaults"
    assert config.lr == 3e-4 and config.sources["lr"].endswith(f"{model}.toml")  # chosen by the recipe study
    assert config.average == "none"  # EMA did no better at that budget
    assert read_layer(*baseline_file(f"{model}.toml")).options == {"init_features": 32}
    assert config.options == {"init_features": 32}


def test_later_layers_win_and_each_value_names_its_source(tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text("batch_size = 4\n[options]\ninit_features = 8\n")
    config = resolve_config(
        "unet",
        get_plugin("unet"),
        dataset_hints={"input_size": 64, "epochs": 6, "batch_size": 8},
        given=RunOptions(epochs=2, config_file=user),
    )
    assert config.input_size == 64 and config.sources["input_size"] == "dataset hints"
    assert config.batch_size == 4 and config.sources["batch_size"] == f"--config {user}"
    assert config.epochs == 2 and config.sources["epochs"] == "command line"
    assert config.lr == pytest.approx(3e-4) and config.sources["lr"].endswith("unet.toml")
    assert config.options == {"init_features": 8}
    assert config.sources["options.init_features"] == f"--config {user}"


def test_without_team_the_run_counts_for_medico_team_else_the_login_name_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDICO_TEAM", raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    config = resolve_config("unet", get_plugin("unet"))
    assert (config.team, config.sources["team"]) == ("root", "your login name")
    monkeypatch.setenv("MEDICO_TEAM", "polyp-lab")
    config = resolve_config("unet", get_plugin("unet"))
    assert (config.team, config.sources["team"]) == ("polyp-lab", "$MEDICO_TEAM")
    user = tmp_path / "mine.toml"
    user.write_text('team = "from-file"\n')
    from_file = resolve_config("unet", get_plugin("unet"), given=RunOptions(config_file=user))
    assert (from_file.team, from_file.sources["team"]) == ("from-file", f"--config {user}")
    given = resolve_config("unet", get_plugin("unet"), given=RunOptions(team="alice", config_file=user))
    assert (given.team, given.sources["team"]) == ("alice", "command line")


def test_a_medico_team_that_is_not_a_plain_name_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDICO_TEAM", "../evil")
    with pytest.raises(MedicoError, match=r"MEDICO_TEAM '\.\./evil': expected a plain name"):
        resolve_config("unet", get_plugin("unet"))


def test_option_values_are_read_as_toml_values() -> None:
    assert parse_option("init_features=8") == ("init_features", 8)
    assert parse_option("scale=0.5") == ("scale", 0.5)
    assert parse_option("flag=true") == ("flag", True)
    assert parse_option("name=bilinear") == ("name", "bilinear")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_option("init_features")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epoch = 3\n", "unknown key 'epoch'"),
        ('epochs = "ten"\n', "epochs must be int"),
        ("epochs = true\n", "epochs must be int"),
        ("lr = -1.0\n", "lr must be a finite number above 0"),
        ('precision = "fp8"\n', "precision must be one of"),
        ('workers = "many"\n', "workers must be auto or a number"),
        ("workers = -1\n", "workers must be an integer from 0 to 256"),
        ("epochs = \n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        resolve_config("unet", get_plugin("unet"), given=RunOptions(config_file=path))
    assert str(path) in str(caught.value)


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config("unet", get_plugin("unet"), given=RunOptions(config_file=tmp_path / "nope.toml"))


def test_resuming_may_extend_epochs_but_not_change_what_is_trained() -> None:
    config = RunConfig(model="unet", epochs=2, lr=1e-4)
    longer = config.with_resume_overrides(RunOptions(epochs=5))
    assert longer.epochs == 5 and longer.sources["epochs"] == "command line (resume)"
    with pytest.raises(ConfigError, match="cannot change lr"):
        config.with_resume_overrides(RunOptions(lr=1e-3))


def test_a_config_round_trips_through_its_dict() -> None:
    config = RunConfig(model="unet", options={"init_features": 4}, epochs=3, sources={"epochs": "command line"})
    again = RunConfig.from_dict(config.as_dict(), "config.json")
    assert again == config and again.sources == config.sources
