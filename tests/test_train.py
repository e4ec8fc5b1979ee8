import numpy as np
import pytest

from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.errors import ConfigError, DataError, TrainingError


def _prepare(path, *overrides):
    return prepare_training(load_config(path, list(overrides)))


def _error(exc_type, path, *overrides):
    with pytest.raises(exc_type) as info:
        _prepare(path, *overrides)
    return str(info.value)


def test_auto_layers_and_string_classes(tiny_config):
    run = _prepare(tiny_config)
    assert run.network.sizes == [2, 8, 3]
    assert run.classes == ["cat", "dog", "eel"]
    assert run.features == ["a", "b"] and run.targets == ["kind"]
    assert run.data.X_train.dtype == np.float64 and run.data.Y_train.shape == (24, 3)
    assert run.data.validation[0].shape == (6, 2)
    resolved = run.resolved_config()
    assert resolved["model"]["layers"] == [2, 8, 3] and resolved["seed"] == 1
    assert resolved["model"]["output_activation"] == "softmax"


def test_target_defaults_to_the_last_column(write, tiny_csv):
    path = write("c.yaml", "data: {train: tiny.csv}\n")
    assert _prepare(path).targets == ["kind"]


def test_missing_target_column_suggests(tiny_config):
    message = _error(ConfigError, tiny_config, "data.target=knd")
    assert message.startswith("--set data.target=knd: data.target: column 'knd' is not in")
    assert message.endswith("did you mean 'kind'?")


def test_declared_layer_sizes_must_match_the_data(tiny_config):
    message = _error(ConfigError, tiny_config, "model.layers=[3, 8, auto]")
    assert "model.layers.0: declares 3 inputs but" in message
    assert "has 2 feature columns (a, b: every column except the target 'kind')" in message
    message = _error(ConfigError, tiny_config, "model.layers=[auto, 8, 4]")
    assert "model.layers.2: declares 4 outputs but" in message and "3 classes in 'kind' (cat, dog, eel)" in message


def test_single_class_is_refused(write):
    write("one.csv", "a,y\n1,x\n2,x\n")
    path = write("c.yaml", "data: {train: one.csv}\n")
    assert "column 'y' has a single class ('x'); classification needs at least two" in _error(DataError, path)


def test_cross_entropy_on_a_continuous_target_is_explained(write):
    write("r.csv", "a,y\n1,0.5\n2,1.5\n3,2.25\n")
    path = write("c.yaml", "data: {train: r.csv}\n")
    message = _error(ConfigError, path)
    assert "training.loss: cross_entropy needs class labels" in message and "use loss mse" in message


def test_regression_on_text_labels_is_explained(write, tiny_csv):
    path = write("c.yaml", "data: {train: tiny.csv}\ntraining: {loss: mse}\n")
    message = _error(DataError, path)
    assert ":2: column 'kind': 'cat' is not a number" in message
    assert "class labels need loss cross_entropy" in message


def test_multi_target_regression(write):
    rows = ["x1,x2,y1,y2"] + [f"{i},{i % 3},{2 * i},{-i}" for i in range(20)]
    write("m.csv", "\n".join(rows) + "\n")
    path = write("c.yaml", "data: {train: m.csv, target: [y1, y2]}\ntraining: {loss: mse}\n")
    run = _prepare(path)
    assert run.network.sizes == [2, 32, 2] and run.targets == ["y1", "y2"]
    assert run.network.activation_names[-1] == "identity"


def test_validation_file_is_matched_by_name_and_checked(write, tiny_csv):
    write("val.csv", "kind,b,a\ncat,0,0\ndog,2,1\n")
    path = write("c.yaml", "data: {train: tiny.csv, validation: val.csv}\n")
    run = _prepare(path)
    np.testing.assert_array_equal(run.data.validation[1].argmax(axis=1), [0, 1])
    assert len(run.data.X_train) == 30
    write("val2.csv", "a,b,kind\n0,0,cat\n1,2,fox\n")
    message = _error(DataError, write("d.yaml", "data: {train: tiny.csv, validation: val2.csv}\n"))
    assert message.endswith("val2.csv:3: column 'kind': label 'fox' does not occur in the training data (classes: cat, dog, eel)")
    write("val3.csv", "a,kind\n0,cat\n")
    message = _error(DataError, write("e.yaml", "data: {train: tiny.csv, validation: val3.csv}\n"))
    assert "validation file lacks column(s) 'b'" in message


def test_divergence_stops_with_a_training_error(write):
    write("r.csv", "x,y\n" + "".join(f"{i},{3 * i}\n" for i in range(50)))
    path = write("c.yaml", "data: {train: r.csv, normalize: none}\ntraining: {loss: mse, learning_rate: 10}\n")
    run = _prepare(path)
    with pytest.raises(TrainingError, match=r"training diverged: the loss became (inf|nan) in epoch \d+, batch \d+; try a lower learning rate"):
        run.fit()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_arrays_different_seed_different(tiny_config, dtype):
    def weights(seed):
        model = _prepare(tiny_config, f"seed={seed}", f"model.dtype={dtype}").fit()
        return model.network.parameters()

    first, again, other = weights(3), weights(3), weights(4)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, again))
    assert any(a.tobytes() != c.tobytes() for a, c in zip(first, other))


def test_missing_seed_gets_one_drawn_and_recorded(tiny_config):
    run = _prepare(tiny_config, "seed=null")
    assert isinstance(run.seed, int) and run.resolved_config()["seed"] == run.seed


@pytest.mark.parametrize(
    "rows, data, expected",
    [
        ("1,2,x\n3,4,\n", "", ":3: column 'label': missing target value"),
        ("1,2,1\n3,4,NaN\n", "", ":3: column 'label': missing target value"),
        # with nothing read as missing, the labels' own checks
        ("1,2,x\n3,4,\n", ", missing_values: []", ":3: column 'label': empty label; every row needs a class"),
        ("1,2,1\n3,4,NaN\n", ", missing_values: []", ":3: column 'label': label 'NaN' is not a class"),
        ("1,2,1\n3,4,1.0\n", "", "labels '1' and '1.0' are the same number spelt differently"),
        ("1,1e308,x\n3,-1e308,y\n", "", "column 'b' holds values too large to normalise"),
    ],
)
def test_label_and_magnitude_checks(write, rows, data, expected):
    write("d.csv", "a,b,label\n" + rows)
    assert expected in _error(DataError, write("c.yaml", f"data: {{train: d.csv{data}}}\n"))


def test_float32_overflow_is_a_data_error(write):
    write("d.csv", "a,b,label\n1,1e39,x\n3,4,y\n")
    message = _error(DataError, write("c.yaml", "data: {train: d.csv, normalize: none}\n"))
    assert "column 'b' holds values too large for float32" in message and "model.dtype: float64" in message
    _prepare(write("e.yaml", "data: {train: d.csv, normalize: none}\nmodel: {dtype: float64}\n"))  # fine


def test_missing_data_file_says_where_it_was_looked_for(write, tmp_path):
    path = write("sub/c.yaml", "data: {train: nope.csv}\n")
    message = _error(ConfigError, path)
    assert message == f"{path}:1: data.train: {tmp_path / 'sub' / 'nope.csv'}: file not found (paths in a config are relative to its folder, {tmp_path / 'sub'})"


def test_resolved_config_records_absolute_paths_and_the_real_output(tiny_config, tmp_path):
    run = prepare_training(load_config(tiny_config), tmp_path / "elsewhere.npz")
    resolved = run.resolved_config()
    assert resolved["data"]["train"] == str(tmp_path / "tiny.csv")
    assert resolved["output"] == str(tmp_path / "elsewhere.npz")
