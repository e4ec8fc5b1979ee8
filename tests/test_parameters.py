"""Losses and activations carry their parameters (Huber's delta, leaky ReLU's slope) from the
config through training into the model file, and back out in predict and evaluate."""

import numpy as np
import pytest

from nncli.commands.evaluate import evaluate
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.core.activations import get_activation
from nncli.core.losses import get_loss
from nncli.core.tasks import LOSS_KINDS
from nncli.errors import ModelFileError
from nncli.files.model import load_model, save_model
from tests.conftest import CONFIGS
from tests.gradcheck import assert_gradients_close, numerical_gradient
from tests.test_modelfile import _edit_meta


def _train(overrides, tmp_path, name="m.npz"):
    run = prepare_training(load_config(CONFIGS / "diabetes.yaml", ["training.epochs=3", "seed=3", *overrides]))
    model = run.fit()
    path = tmp_path / name
    save_model(path, model)
    return run, model, path


def test_evaluate_reports_the_huber_loss_training_reported(tmp_path):
    """A model trained with huber_delta 0.1: `evaluate` on the training run's validation rows
    gives the training's val_loss (it used to apply the default delta 1.0)."""
    run, model, path = _train(["training.loss=huber", "training.huber_delta=0.1", "data.normalize_target=standard"], tmp_path)
    assert load_model(path).loss_params == {"delta": 0.1}
    X_val, Y_val = run.data.validation
    features = model.feature_scaler.inverse(X_val.astype(np.float64))
    targets = model.target_scaler.inverse(Y_val.astype(np.float64))
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in np.hstack([features, targets]))
    data = tmp_path / "val.csv"
    data.write_text(",".join(model.features + model.targets) + "\n" + rows + "\n")
    result = evaluate(path, str(data))
    assert result.evaluation.metrics["loss"] == pytest.approx(model.metrics["val_loss"], rel=1e-4)


def test_the_leaky_relu_slope_is_trained_with_stored_and_restored(tmp_path):
    _, model, path = _train(["model.activation=leaky_relu", "model.leaky_relu_slope=0.2"], tmp_path)
    assert model.network.activation_params[0] == {"slope": 0.2}
    loaded = load_model(path)
    assert loaded.network.activation_params == [{"slope": 0.2}, {}]
    X = np.random.default_rng(0).standard_normal((50, len(model.features))) * 3
    np.testing.assert_array_equal(loaded.outputs(X), model.outputs(X))
    _, other, _ = _train(["model.activation=leaky_relu"], tmp_path, "default.npz")
    assert other.network.activation_params[0] == {"slope": 0.01}


@pytest.mark.parametrize("slope", [0.01, 0.3])
def test_leaky_relu_gradient_with_its_slope(slope):
    activation = get_activation("leaky_relu", slope=slope)
    z = np.random.default_rng(1).standard_normal((4, 5))
    z[np.abs(z) < 1e-3] = 0.5  # away from the kink
    upstream = np.random.default_rng(2).standard_normal(z.shape)
    a = activation.forward(z.copy())
    assert np.allclose(a[z < 0], slope * z[z < 0])
    analytic = activation.backward(upstream.copy(), a)
    numeric = numerical_gradient(lambda: float((activation.forward(z.copy()) * upstream).sum()), z)
    assert_gradients_close(analytic, numeric)


def test_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match="takes no parameter 'slope'"):
        get_activation("relu", slope=0.1)
    with pytest.raises(ValueError, match="takes no parameter 'delta'"):
        get_loss("mse", delta=0.1)


def test_a_version_1_file_reads_hubers_delta_from_its_stored_config(tmp_path):
    _, _, path = _train(["training.loss=huber", "training.huber_delta=0.25"], tmp_path)

    def as_version_1(meta):
        meta["format_version"] = 1
        del meta["loss_params"], meta["activation_params"]

    old = _edit_meta(path, tmp_path / "v1.npz", as_version_1)
    assert load_model(old).loss_params == {"delta": 0.25}


def _model_error(path):
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    return str(info.value)


def test_stored_parameters_are_checked(tmp_path):
    _, _, path = _train(["training.loss=huber"], tmp_path)
    bad = _edit_meta(path, tmp_path / "a.npz", lambda m: m.update(loss_params={"delta": -1}))
    assert "not positive finite numbers" in _model_error(bad)
    bad = _edit_meta(path, tmp_path / "b.npz", lambda m: m.update(loss_params={"slope": 1}))
    assert "takes no parameter 'slope'" in _model_error(bad)
    bad = _edit_meta(path, tmp_path / "c.npz", lambda m: m.update(activation_params=[{}]))
    assert "lists 1 activation_params for 2 activations" in _model_error(bad)
    bad = _edit_meta(path, tmp_path / "d.npz", lambda m: m.pop("activation_params"))
    assert "lacks 'activation_params' (format version 2 stores it)" in _model_error(bad)


def test_a_classifier_whose_output_does_not_fit_its_loss_is_refused(tmp_path):
    config = load_config(CONFIGS / "iris.yaml", ["training.epochs=1"])
    path = tmp_path / "iris.npz"
    save_model(path, prepare_training(config).fit())
    bad = _edit_meta(path, tmp_path / "relu.npz", lambda m: m.update(activations=[*m["activations"][:-1], "relu"]))
    assert "needs a softmax output layer" in _model_error(bad)


def test_the_loss_table_names_every_loss_and_fits_its_registry():
    from nncli.core.losses import LOSSES

    assert set(LOSS_KINDS) == set(LOSSES)
    for name, kind in LOSS_KINDS.items():
        assert kind.task in ("classification", "regression")
        assert kind.targets in ("one_hot", "binary", "values")
        assert (kind.targets == "values") == (not kind.classification), name
        assert get_activation(kind.output).name == kind.output
    assert LOSS_KINDS["binary_cross_entropy"].output_width(2, 1) == 1
    assert LOSS_KINDS["cross_entropy"].output_width(3, 1) == 3
    assert LOSS_KINDS["mse"].output_width(None, 2) == 2
