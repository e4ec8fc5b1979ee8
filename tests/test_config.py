import typing

import pytest

from nncli import config as cfg
from nncli.config import load_config, resolve_path
from nncli.config.messages import models_in
from nncli.core.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS
from nncli.core.init import INITIALISERS
from nncli.core.losses import LOSSES
from nncli.core.optimizers import OPTIMIZERS
from nncli.core.schedules import SCHEDULES
from nncli.errors import ConfigError
from tests.conftest import CONFIGS


def _error(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return str(info.value)


def test_config_names_match_the_registries():
    assert set(typing.get_args(cfg.HiddenActivation)) == set(HIDDEN_ACTIVATIONS)
    assert set(typing.get_args(cfg.OutputActivation)) == set(ACTIVATIONS) | {"auto"}
    assert set(typing.get_args(cfg.LossName)) == set(LOSSES)
    init_names = {typing.get_args(m.model_fields["name"].annotation)[0] for m in models_in(cfg.InitConfig)}
    assert init_names == set(INITIALISERS)
    opt_names = {typing.get_args(m.model_fields["name"].annotation)[0] for m in models_in(cfg.OptimizerConfig)}
    assert opt_names == set(OPTIMIZERS)
    schedule_names = {typing.get_args(m.model_fields["name"].annotation)[0] for m in models_in(cfg.ScheduleConfig)}
    assert schedule_names == set(SCHEDULES)


@pytest.mark.parametrize("name", ["digits", "seed-example", "xor", "diabetes", "iris"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert resolve_path(config, "data.train", config.data.train).exists()


def test_defaults_and_shorthands(write):
    path = write("c.yaml", "data: {train: x.csv}\nmodel: {init: xavier}\n")
    config = load_config(path)
    assert config.model.layers == ["auto", 32, "auto"]
    assert config.model.init.name == "xavier"
    assert config.training.optimizer.name == "sgd"
    assert config.output_activation == "softmax"
    assert config.seed is None


def test_set_overrides_parse_yaml_scalars_and_validate(write):
    path = write("c.yaml", "data: {train: x.csv}\n")
    config = load_config(
        path,
        ["training.epochs=7", "model.activation=tanh", "model.layers=[auto, 5, 3, auto]", "training.learning_rate=1e-3"],
    )
    assert config.training.epochs == 7 and config.model.activation == "tanh"
    assert config.model.layers == ["auto", 5, 3, "auto"]
    assert config.training.learning_rate == pytest.approx(1e-3)
    config = load_config(path, ["model.layers=[auto, 5, auto]", "model.layers.1=9", "model.init=constant", "model.init.value=2"])
    assert config.model.layers[1] == 9 and config.model.init.value == 2


def test_misspelt_key_suggests_the_right_one_with_line(write):
    path = write("c.yaml", "data:\n  train: x.csv\ntraining:\n  learning_rat: 0.1\n")
    assert _error(path) == f"{path}:4: training.learning_rat: unknown key; did you mean 'learning_rate'?"


def test_unknown_key_without_close_match_lists_valid_keys(write):
    path = write("c.yaml", "data:\n  train: x.csv\nzzz: 1\n")
    message = _error(path)
    assert message.startswith(f"{path}:3: zzz: unknown key; expected one of: seed, data, model, training, output")


def test_bad_literal_lists_allowed_values(write):
    path = write("c.yaml", "data:\n  train: x.csv\nmodel:\n  activation: rleu\n")
    message = _error(path)
    assert message.startswith(f"{path}:4: model.activation: ")
    assert "'relu'" in message and "'tanh'" in message and "(got 'rleu')" in message


@pytest.mark.parametrize(
    "yaml_value, expected",
    [
        ("training:\n  epochs: 5.0", "training.epochs: input should be a valid integer (got 5.0)"),
        ("training:\n  epochs: true", "training.epochs: input should be a valid integer (got true)"),
        ("training:\n  epochs: '5'", "training.epochs: input should be a valid integer (got '5')"),
        ("training:\n  epochs: 0", "training.epochs: input should be greater than or equal to 1 (got 0)"),
        ("training:\n  learning_rate: .nan", "training.learning_rate: input should be a finite number (got nan)"),
        ("training:\n  learning_rate: -1", "training.learning_rate: input should be greater than 0 (got -1)"),
        ("training:\n  batch_size: 0", "training.batch_size: input should be greater than or equal to 1 (got 0)"),
        ("model:\n  layers: [auto, 0, auto]", "model.layers.1: expected a whole number of neurons >= 1"),
        ("model:\n  layers: [auto]", "model.layers: list should have at least 2 items"),
        ("model:\n  init: constant", "model.init.value: required setting is missing"),
        ("model:\n  init: {name: constant, valeu: 1}", "model.init.valeu: unknown key; did you mean 'value'?"),
        ("data:\n  train: x.csv\n  validation_split: 1.0", "data.validation_split: input should be less than 1"),
    ],
)
def test_field_errors_name_path_line_and_value(write, yaml_value, expected):
    text = yaml_value if yaml_value.startswith("data:") else "data:\n  train: x.csv\n" + yaml_value
    path = write("c.yaml", text + "\n")
    message = _error(path)
    assert message.startswith(f"{path}:"), message
    assert expected in message


def test_missing_required_section(write):
    path = write("c.yaml", "seed: 1\n")
    assert _error(path) == f"{path}: data: required setting is missing"


def test_cross_field_checks(write):
    path = write("c.yaml", "data: {train: x.csv}\nmodel:\n  layers: [auto, auto, auto]\n")
    assert "model.layers.1: only the first (input) and last (output) layer can be 'auto'" in _error(path)
    path = write("d.yaml", "data: {train: x.csv}\nmodel:\n  output_activation: sigmoid\n")
    assert ":3: model.output_activation: cross_entropy needs a softmax output" in _error(path)
    path = write("e.yaml", "data: {train: x.csv, target: [a, b]}\n")
    assert "data.target: cross_entropy (classification) needs exactly one target column" in _error(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "config is empty"),
        ("# only a comment\n", "config is empty"),
        ("- a\n- b\n", ":1: expected a mapping of settings"),
        ("data: [unclosed\n", ": YAML syntax error:"),
        ("data:\n  train: a\n  train: b\n", ":3: data.train: duplicate key (first set on line 2)"),
        ("!!python/object/apply:os.system ['echo hacked']\n", "YAML syntax error"),
    ],
)
def test_yaml_level_errors(write, text, expected):
    path = write("c.yaml", text)
    assert expected in _error(path)


def test_yaml_syntax_error_has_line_and_column(write):
    path = write("c.yaml", "data:\n  train: x.csv\n  target: [a, b\n")
    message = _error(path)
    assert message.startswith(f"{path}:4:") and "YAML syntax error" in message


def test_alias_bomb_is_refused_quickly(write):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        lines.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    path = write("bomb.yaml", "\n".join(lines) + "\n")
    assert "more than 100,000 values" in _error(path)


def test_not_utf8_and_missing_file(write, tmp_path):
    assert "not a UTF-8 text file" in _error(write("c.yaml", b"\xff\xfe\x00data"))
    assert _error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: config file not found"


def test_override_errors_name_the_flag(write):
    path = write("c.yaml", "data: {train: x.csv}\n")
    assert _error(path, ["training.epochs=abc"]) == (
        "--set training.epochs=abc: training.epochs: input should be a valid integer (got 'abc')"
    )
    assert "expected KEY=VALUE" in _error(path, ["training.epochs"])
    assert _error(path, ["training.epoch=3"]).endswith("training.epoch: unknown key; did you mean 'epochs'?")
    assert _error(path, ["seed.x=1"]) == "--set seed.x=1: seed: input should be a valid integer"
    assert "data.train is a single value, not a section" in _error(path, ["data.train.x=1"])


def test_paths_resolve_against_config_folder_but_set_paths_against_cwd(write, tmp_path):
    path = write("sub/c.yaml", "data: {train: ../data/x.csv}\n")
    config = load_config(path)
    assert resolve_path(config, "data.train", config.data.train) == tmp_path / "data" / "x.csv"
    config = load_config(path, ["data.train=mine.csv"])
    assert str(resolve_path(config, "data.train", config.data.train)) == "mine.csv"


def test_exponent_floats_are_numbers_as_in_yaml_1_2(write):
    path = write("c.yaml", "data: {train: x.csv}\ntraining:\n  learning_rate: 1e-3\n")
    assert load_config(path).training.learning_rate == pytest.approx(0.001)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("training: {epochs: 010}", ("training", "epochs", 10)),  # decimal, not octal
        ("training: {epochs: 0o10}", ("training", "epochs", 8)),
        ("data: {train: x.csv, target: no}", ("data", "target", "no")),  # a column named "no"
        ("data: {train: x.csv, target: on}", ("data", "target", "on")),
    ],
)
def test_yaml_1_2_scalars(write, line, expected):
    text = line if line.startswith("data") else "data: {train: x.csv}\n" + line
    config = load_config(write("c.yaml", text + "\n"))
    section, key, value = expected
    assert getattr(getattr(config, section), key) == value


@pytest.mark.parametrize(
    "text, expected",
    [
        ("data: {train: x.csv, shuffle: on}", "data.shuffle: input should be a valid boolean (got 'on')"),
        ("data: {train: x.csv}\ntraining: {epochs: '1:30'}", "training.epochs: input should be a valid integer (got '1:30')"),
        ("data: {train: x.csv}\ntraining: {optimizer: {name: sgd, momentun: 0.9}}", "training.optimizer.momentun: unknown key"),
        ("data: {train: x.csv}\nmodel: {init: He}", "model.init: expected one of: he, xavier, lecun, normal, uniform, constant"),
        ("data: {train: x.csv}\nmodel: {init: {std: 1}}", "the mapping has no `name:`"),
        ("data: {train: x.csv}\nmodel:\n", "model: expected a section (a mapping of keys), got nothing"),
        ("data: {train: x.csv}\ntraining: 5\n", "training: expected a section (a mapping of keys), got a number (5)"),
        ("data: {train: x.csv, normalize_target: standard}", "data.normalize_target: applies to regression targets only"),
        ("data: {train: x.csv}\noutput: ''", "output: string should have at least 1 character"),
    ],
)
def test_friendly_messages(write, text, expected):
    assert expected in _error(write("c.yaml", text + "\n"))


def test_cross_field_errors_from_set_name_the_flag(write):
    path = write("c.yaml", "data: {train: x.csv}\nmodel: {layers: [auto, 4, auto]}\n")
    message = _error(path, ["model.layers.1=auto"])
    assert message.startswith("--set model.layers.1=auto: model.layers.1: only the first")


def test_a_whole_section_set_on_the_command_line_keeps_the_cwd_rule(write):
    path = write("sub/c.yaml", "data: {train: in-config.csv}\n")
    config = load_config(path, ["data={train: mine.csv}"])
    assert str(resolve_path(config, "data.train", config.data.train)) == "mine.csv"
