"""`nncli embed`: each row's activations at a hidden layer, streamed as predict streams."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.core import model as core_model
from nncli.errors import UsageError
from nncli.files.model import load_model, save_model
from nncli.tabular.columns import text_columns_for
from nncli.tabular.embedding import code_columns, embedding_layer, layer_codes, stream_codes
from nncli.tabular.tables import open_table, read_table
from tests.conftest import CONFIGS, DATASETS, small_digits_autoencoder

runner = CliRunner()
DIGITS = DATASETS / "digits.csv"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    # The shipped config, narrowed to three hidden layers (the tests count on layer 2 being the code).
    return small_digits_autoencoder(tmp_path_factory.mktemp("embed") / "ae.npz", "[auto,128,10,128,auto]")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp("embed") / "digits.npz"
    save_model(path, prepare_training(load_config(CONFIGS / "digits.yaml", ["training.epochs=1"])).fit())
    return path


def _pixels() -> np.ndarray:
    return np.loadtxt(DIGITS, delimiter=",", skiprows=1)[:, :64]


def test_default_layer_is_the_narrowest_and_codes_equal_the_network(autoencoder):
    model = load_model(autoencoder)
    assert model.hidden_sizes == [128, 10, 128] and embedding_layer(model) == 2
    result = invoke("embed", autoencoder, DIGITS, "--keep", "label")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["label"] + [f"code_{j}" for j in range(1, 11)] and len(rows) == 1 + 1797
    codes = np.array([row[1:] for row in rows[1:]], dtype=np.float32)
    X = model.feature_scaler.transform(_pixels(), np.float32)
    expected = model.network.layer_outputs(X)[1]
    assert codes.tobytes() == expected.tobytes()  # %.9g reads back exactly


def test_any_layer_of_a_supervised_model(classifier):
    model = load_model(classifier)
    result = invoke("embed", classifier, DIGITS, "--layer", "1")
    assert result.exit_code == 0, result.stderr
    header = result.stdout.split("\n", 1)[0].split(",")
    assert header == code_columns(model, 1) and len(header) == 128


@pytest.mark.parametrize("layer", ["0", "4", "-1"])
def test_a_layer_the_model_lacks_is_one_line_exit_2(autoencoder, layer):
    result = invoke("embed", autoencoder, DIGITS, "--layer", layer)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "has hidden layers 1 (128 wide), 2 (10 wide), 3 (128 wide); give --layer 1 to 3" in result.stderr


def test_a_model_without_hidden_layers_has_no_codes(write, tmp_path):
    config = write("lin.yaml", f"seed: 0\ndata: {{train: {DIGITS}, target: label}}\nmodel: {{layers: [auto, auto]}}\ntraining: {{epochs: 1}}\n")
    path = tmp_path / "lin.npz"
    save_model(path, prepare_training(load_config(config)).fit())
    with pytest.raises(UsageError, match="has no hidden layer"):
        embedding_layer(load_model(path))
    result = invoke("embed", path, DIGITS)
    assert result.exit_code == 2 and "has no hidden layer" in result.stderr


def test_parquet_output_and_keep_clash(autoencoder, tmp_path):
    out = tmp_path / "codes.parquet"
    result = invoke("embed", autoencoder, DIGITS, "--keep", "label", "-o", out)
    assert result.exit_code == 0, result.stderr
    table = read_table(out)
    assert table.header == ["label"] + [f"code_{j}" for j in range(1, 11)] and len(table.values) == 1797
    clash = invoke("embed", autoencoder, DIGITS, "--keep", "code_1")
    assert clash.exit_code == 2 and "--keep code_1: the output already has a column of that name" in clash.stderr
    same = invoke("embed", autoencoder, DIGITS, "-o", DIGITS)
    assert same.exit_code == 2 and "is the input file; write the codes elsewhere" in same.stderr


def test_streamed_in_bounded_blocks(autoencoder, monkeypatch):
    """Tiny blocks: the codes are the same, and no pass sees more rows than a block holds."""
    model = load_model(autoencoder)
    whole = layer_codes(model, _pixels(), 2)
    monkeypatch.setattr(core_model, "FORWARD_BLOCK_VALUES", 3 * sum(model.network.sizes))
    seen = []
    forward = model.network.layer_outputs
    monkeypatch.setattr(model.network, "layer_outputs", lambda X: seen.append(len(X)) or forward(X))
    blocked = layer_codes(model, _pixels(), 2)
    assert max(seen) <= 3 and sum(seen) == 1797
    assert blocked.tobytes() == whole.tobytes()


def test_stream_codes_is_the_api_cluster_reads(autoencoder):
    model = load_model(autoencoder)
    with open_table(str(DIGITS), 4096) as stream:  # small chunks: many of them
        text = text_columns_for(model, stream.header, [])
        blocks = [codes for _, codes in stream_codes(model, stream, text, embedding_layer(model))]
    assert len(blocks) > 1 and np.concatenate(blocks).tobytes() == layer_codes(model, _pixels(), 2).tobytes()


def test_a_bad_cell_names_its_line(autoencoder, write):
    lines = DIGITS.read_text().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]  # an empty first pixel: a missing cell the model cannot fill
    bad = write("bad.csv", "\n".join(lines) + "\n")
    result = invoke("embed", autoencoder, bad)
    assert result.exit_code == 2 and "bad.csv:4" in result.stderr and result.stdout == ""


def test_the_installed_entry_point(autoencoder):
    done = subprocess.run([sys.executable, "-m", "nncli", "embed", str(autoencoder), str(DIGITS), "--layer", "9"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.startswith("nncli: error: --layer 9:") and done.stderr.count("\n") == 1
