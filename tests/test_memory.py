"""How many copies of the table `load_training_data` makes (issue #11: the whole `train` run
peaked at 12x its float32 training arrays).

NumPy's allocations are traced by tracemalloc (polars' own, the parsed frame, are not), so the
peak traced while loading counts the arrays nncli itself builds, against the bytes of the arrays
it returns (the training and validation features, float32). What is needed: the table in
float32 (1x), the training and validation rows taken from it once each (1x more), and a few
blocks of float64 working space; the label column and the targets are small. Anything up to 3x
leaves room for those; each extra full-size copy (a float64 table, a float64 temporary of the
scaling, a second copy of the split) adds 1-2x, and the code before this change peaked at 7.3x (now 2.0x).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from nncli.config import load_config
from nncli.tabular import fast
from nncli.tabular.dataset import load_training_data

ROWS, FEATURES = 4_000, 200  # 3.2 MB of float32 features; the 1 MiB blocks of working space are small beside them


@pytest.fixture
def pixels(tmp_path, monkeypatch):
    """A digits-like integer CSV and a float32 config reading it, with polars' parser (the
    parser of every file of 32 MiB and more) taking this small file too."""
    monkeypatch.setattr(fast, "FAST_PATH_BYTES", 0)
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, size=(ROWS, FEATURES))
    labels = rng.integers(0, 10, size=ROWS)
    header = ",".join(f"p{i}" for i in range(FEATURES)) + ",label"
    lines = [",".join(map(str, row)) + f",{label}" for row, label in zip(values.tolist(), labels.tolist())]
    (tmp_path / "pixels.csv").write_text(header + "\n" + "\n".join(lines) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text("data: {train: pixels.csv, target: label, validation_split: 0.2, normalize: standard}\n"
                      "model: {layers: [auto, 16, auto], dtype: float32}\n"
                      "training: {loss: cross_entropy, epochs: 1}\n")
    return load_config(config), values


def test_loading_training_data_makes_few_copies_of_the_table(pixels):
    config, values = pixels
    load_training_data(config, np.random.default_rng(1))  # (imports and caches warmed outside the count)
    tracemalloc.start()
    try:
        data = load_training_data(config, np.random.default_rng(1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data.X_train.dtype == np.float32 and data.validation[0].dtype == np.float32
    array_bytes = data.X_train.nbytes + data.validation[0].nbytes
    assert array_bytes == ROWS * FEATURES * 4
    assert peak / array_bytes <= 3.0, f"peak traced memory {peak / array_bytes:.1f}x the float32 feature arrays"


def test_float32_features_are_the_float64_features_rounded_once(pixels, monkeypatch):
    """Reading the table as float32 (exact for integers) and scaling it in place gives the
    values the float64 table gave: (x - offset) / scale in float64, rounded once to float32."""
    config, values = pixels
    data = load_training_data(config, np.random.default_rng(1))
    monkeypatch.setattr(fast, "FAST_PATH_BYTES", 1 << 62)  # NumPy's parser: float64 throughout
    reference = load_training_data(config, np.random.default_rng(1))
    np.testing.assert_array_equal(data.feature_scaler.offset, reference.feature_scaler.offset)
    np.testing.assert_array_equal(data.feature_scaler.scale, reference.feature_scaler.scale)
    np.testing.assert_array_equal(data.X_train, reference.X_train)
    np.testing.assert_array_equal(data.validation[0], reference.validation[0])
    np.testing.assert_array_equal(data.Y_train, reference.Y_train)
