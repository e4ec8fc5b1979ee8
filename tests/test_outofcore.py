"""Training from disk (`data.in_memory: false`): the rows read a window at a time from the
parse cache give the run the in-memory path gives wherever the two can agree bit for bit,
resume exactly, and never trust the cache."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands import parse_cache, train
from nncli.core.preprocess import Scaler, ScalerFit, chunked_permutation
from nncli.files import datacache
from nncli.tabular import outofcore
from nncli.tabular.parse import read_header
from nncli.tabular.source import read_csv

runner = CliRunner()


def _weights(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


def _train(config, output, *args):
    result = runner.invoke(app, ["train", str(config), "-o", str(output), "--json", "--force", *map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few rows and windows of a few blocks, so a small file has many of each."""
    monkeypatch.setattr(outofcore, "BLOCK_BYTES", 200)
    monkeypatch.setattr(outofcore, "WINDOW_BYTES", 600)


@pytest.fixture
def classes_csv(write):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 5)) * [1, 10, 100, 0.1, 3]
    labels = np.where(X[:, 0] + X[:, 1] / 10 > 0, "yes", "no")
    rows = ["a,b,c,d,e,label"] + [",".join(f"{v:.4f}" for v in x) + f",{y}" for x, y in zip(X, labels)]
    write("data.csv", "\n".join(rows) + "\n")
    return write("run.yaml", """
        seed: 5
        data: {train: data.csv, target: label, cache: cache}
        model: {layers: [auto, 16, auto], dtype: float64}
        training: {epochs: 4, batch_size: 32, learning_rate: 0.05}
        """)


def test_from_disk_trains_the_same_weights_where_the_order_and_scaling_agree(classes_csv, tmp_path, small_blocks):
    """No shuffling and no scaling statistics: both paths see the same rows in the same order."""
    same = ["--set", "data.shuffle=false", "--set", "data.normalize=none"]
    memory = _train(classes_csv, tmp_path / "m.npz", "--set", "data.in_memory=true", *same)
    disk = _train(classes_csv, tmp_path / "d.npz", "--set", "data.in_memory=false", *same)
    assert memory["config"]["data"]["in_memory"] is True and disk["config"]["data"]["in_memory"] is False
    a, b = _weights(tmp_path / "m.npz"), _weights(tmp_path / "d.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert len(memory["history"]) == len(disk["history"]) == 4
    for x, y in zip(memory["history"], disk["history"]):
        # Validation is evaluated a block at a time from disk: its mean loss may differ in the last bit.
        assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-13)
        ignored = ("seconds", "val_loss")
        assert {k: v for k, v in x.items() if k not in ignored} == {k: v for k, v in y.items() if k not in ignored}


def test_from_disk_with_shuffling_and_scaling_learns_as_well(classes_csv, tmp_path, small_blocks):
    memory = _train(classes_csv, tmp_path / "m.npz", "--set", "data.in_memory=true", "--set", "training.epochs=20")
    disk = _train(classes_csv, tmp_path / "d.npz", "--set", "data.in_memory=false", "--set", "training.epochs=20")
    _train(classes_csv, tmp_path / "e.npz", "--set", "data.in_memory=false", "--set", "training.epochs=20")
    assert memory["metrics"]["val_accuracy"] >= 0.9 and disk["metrics"]["val_accuracy"] >= memory["metrics"]["val_accuracy"] - 0.02
    assert disk["metrics"]["val_loss"] == pytest.approx(memory["metrics"]["val_loss"], rel=0.05)
    assert disk["metrics"]["train_rows"] == memory["metrics"]["train_rows"] == 400
    a, b = _weights(tmp_path / "d.npz"), _weights(tmp_path / "e.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a)  # seeded: a rerun is bit-identical
    with np.load(tmp_path / "m.npz") as m, np.load(tmp_path / "d.npz") as d:
        assert json.loads(str(m["meta"]))["feature_scaler"]["offset"] == pytest.approx(
            json.loads(str(d["meta"]))["feature_scaler"]["offset"], rel=1e-12)


def test_an_interrupted_run_from_disk_resumes_bit_for_bit(classes_csv, tmp_path, small_blocks):
    disk = ["--set", "data.in_memory=false"]
    _train(classes_csv, tmp_path / "straight.npz", *disk, "--set", "training.epochs=6")
    _train(classes_csv, tmp_path / "part.npz", *disk, "--set", "training.epochs=3", "--set", "training.checkpoint_every=1")
    result = runner.invoke(app, ["train", "--resume", str(tmp_path / "part.ckpt.npz"), "--set", "training.epochs=6", "--force"])
    assert result.exit_code == 0, result.output
    a, b = _weights(tmp_path / "straight.npz"), _weights(tmp_path / "part.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a)


def test_regression_from_disk_with_a_validation_file_and_scaled_targets(write, tmp_path, small_blocks):
    rng = np.random.default_rng(2)
    for name, n in (("train.csv", 300), ("val.csv", 80)):
        X = rng.normal(size=(n, 3))
        y = X @ [3.0, -2.0, 0.5] * 40 + 1000
        write(name, "x1,x2,x3,y\n" + "".join(f"{a:.5f},{b:.5f},{c:.5f},{t:.3f}\n" for (a, b, c), t in zip(X, y)))
    config = write("reg.yaml", """
        seed: 1
        data: {train: train.csv, validation: val.csv, cache: cache, normalize_target: standard}
        model: {layers: [auto, 8, auto], dtype: float32}
        training: {loss: mse, epochs: 40, batch_size: 16, learning_rate: 0.05}
        """)
    memory = _train(config, tmp_path / "m.npz", "--set", "data.in_memory=true")
    disk = _train(config, tmp_path / "d.npz", "--set", "data.in_memory=false")
    assert disk["metrics"]["val_r2"] > 0.98 and memory["metrics"]["val_r2"] > 0.98
    assert disk["metrics"]["val_rows"] == 80
    assert [use["outcome"] for use in memory["data_cache"]] == ["written", "written"]
    assert [use["outcome"] for use in disk["data_cache"]] == ["read", "read"]  # the in-memory run's caches


def test_streamed_cache_holds_what_the_whole_file_parse_gives(write, tmp_path):
    """Text codes in order of first appearance across chunks, integers kept in float32, and a
    decimal that is not a float32 widening the whole table to float64."""
    rows = ["n,x,label"] + [f"{i},{i % 7},{'cdab'[i % 4] if i > 3 else 'z'}" for i in range(3000)]
    csv = write("ints.csv", "\n".join(rows) + "\n")
    for text, dtype in ((csv.read_text(), np.float32), (csv.read_text().replace("\n5,", "\n5.1,"), np.float64)):
        csv.write_text(text)
        request = datacache.ParseRequest(("label",), "float32")
        location = tmp_path / "c.nncli-cache"
        stamp = datacache.fingerprint(csv)
        original = parse_cache.STREAM_CHUNK_BYTES
        try:
            parse_cache.STREAM_CHUNK_BYTES = 1000  # many chunks
            parse_cache.stream_to_cache(csv, location, stamp, request)
        finally:
            parse_cache.STREAM_CHUNK_BYTES = original
        cached = datacache.read_cache(location, stamp, request, 1 << 20, read_header(csv))
        whole = read_csv(csv, ["label"], np.float32)
        values = cached.values
        assert values.dtype == dtype
        assert np.array_equal(values, whole.values) and cached.text_values == whole.text_values


def test_chunked_permutation_is_a_seeded_permutation_read_a_few_blocks_a_window():
    n, block, window = 1003, 10, 4
    order = chunked_permutation(n, block, window, np.random.default_rng(3))
    assert np.array_equal(np.sort(order), np.arange(n))
    assert np.array_equal(order, chunked_permutation(n, block, window, np.random.default_rng(3)))
    for start in range(0, n, block * window):
        assert len(np.unique(order[start : start + block * window] // block)) <= window
    assert not np.array_equal(order[:block], np.sort(order[:block]))  # rows shuffled within a window


@pytest.mark.parametrize("method", ["standard", "minmax", "none"])
def test_scaler_fit_over_blocks_matches_the_whole_table(method):
    X = np.random.default_rng(4).normal(size=(1001, 6)) * [1, 1e3, 1e-3, 5, 1, 1] + [0, 1e4, 0, -3, 7, 7]
    X[:, 5] = 7.0  # a constant column: scale 1
    fit = ScalerFit(method, 6)
    for start in range(0, 1001, 97):
        fit.add(X[start : start + 97])
    streamed, whole = fit.scaler(), Scaler.fit(X, method)
    assert np.allclose(streamed.offset, whole.offset, rtol=1e-12, atol=0)
    assert np.allclose(streamed.scale, whole.scale, rtol=1e-12, atol=0)
    assert streamed.scale[5] == 1.0


def test_auto_trains_from_disk_when_the_data_would_not_fit(classes_csv, tmp_path, monkeypatch):
    monkeypatch.setattr(train, "available_memory", lambda: 1000)
    document = _train(classes_csv, tmp_path / "a.npz")
    assert document["config"]["data"]["in_memory"] is False
    monkeypatch.setattr(train, "available_memory", lambda: 1 << 40)
    assert _train(classes_csv, tmp_path / "b.npz")["config"]["data"]["in_memory"] is True


def test_from_disk_needs_the_parse_cache(classes_csv):
    result = runner.invoke(app, ["train", str(classes_csv), "--set", "data.in_memory=false", "--set", "data.cache=off"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "data.cache" in result.stderr and "is off" in result.stderr


@pytest.mark.parametrize("damage", ["nan", "code"])
def test_a_cache_damaged_after_its_checks_stops_the_run_with_one_line(classes_csv, tmp_path, damage, small_blocks):
    _train(classes_csv, tmp_path / "a.npz", "--set", "data.in_memory=false")
    [cache] = (classes_csv.parent / "cache").glob("*.nncli-cache")
    data = bytearray(cache.read_bytes())
    offset = datacache.HEADER_BYTES + (8 * 5 if damage == "code" else 8 * 6 * 250)  # row 0's label / a middle feature
    data[offset : offset + 8] = np.float64(np.nan if damage == "nan" else 9).tobytes()
    cache.write_bytes(bytes(data))
    result = runner.invoke(app, ["train", str(classes_csv), "-o", str(tmp_path / "b.npz"), "--set", "data.in_memory=false"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "parse cache" in result.stderr and "damaged" in result.stderr
    assert not (tmp_path / "b.npz").exists()


def test_resume_with_the_config_keeps_where_auto_put_the_data(classes_csv, tmp_path, monkeypatch, small_blocks):
    """`auto` decided "from disk" when the run began; a resume on a machine with more room
    (and the config given again) still reads from disk, so it reproduces the run."""
    monkeypatch.setattr(train, "available_memory", lambda: 1000)
    _train(classes_csv, tmp_path / "straight.npz", "--set", "training.epochs=6")
    _train(classes_csv, tmp_path / "part.npz", "--set", "training.epochs=3", "--set", "training.checkpoint_every=1")
    monkeypatch.setattr(train, "available_memory", lambda: 1 << 40)
    result = runner.invoke(app, ["train", str(classes_csv), "--resume", str(tmp_path / "part.ckpt.npz"),
                                 "--set", "training.epochs=6", "--set", "training.checkpoint_every=1",
                                 "-o", str(tmp_path / "part.npz"), "--force", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"]["data"]["in_memory"] is False
    a, b = _weights(tmp_path / "straight.npz"), _weights(tmp_path / "part.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a)
