"""Shared fixtures: paths to the shipped files and a factory for small configs and CSVs."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DATASETS = ROOT / "datasets"


def three_groups_csv(path: Path) -> Path:
    """60 rows (id, a, b, c, d, group) in three groups told apart by a and b (c and d are noise)."""
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["id,a,b,c,d,group"]
    for i in range(60):
        g = i % 3
        a, b = np.array([(0, 0), (3, 0), (0, 3)][g]) + rng.normal(0, 0.6, 2)
        c, d = rng.normal(0, 1, 2)
        lines.append(f"r{i},{a:.4f},{b:.4f},{c:.4f},{d:.4f},{'xyz'[g]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def small_digits_autoencoder(path: Path, layers: str) -> Path:
    """The shipped autoencoder config's data and training, with ``layers`` (e.g.
    "[auto,32,10,32,auto]": the shipped network's layers may change) and 2 epochs, saved at ``path``."""
    from nncli.commands.train import prepare_training
    from nncli.config import load_config
    from nncli.files.model import save_model

    overrides = ["training.epochs=2", f"model.layers={layers}", "model.activation=[relu,identity,relu]"]
    save_model(path, prepare_training(load_config(CONFIGS / "digits-autoencoder.yaml", overrides)).fit())
    return path


@pytest.fixture(autouse=True, scope="session")
def _user_cache_in_a_temporary_folder(tmp_path_factory):
    """Parse caches the tests make (data.cache: auto) go to a folder of the session, never to the
    user's ~/.cache/nncli; subprocesses inherit it."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def write(tmp_path):
    """write("name", text) -> path: a file in the test's own folder (text is dedented)."""

    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture
def tiny_csv(write):
    """A small, linearly separable 3-class problem with string labels."""
    rows = ["a,b,kind"]
    for i in range(30):
        label = ("cat", "dog", "eel")[i % 3]
        rows.append(f"{i % 3 + 0.1 * (i % 5)},{(i % 3) * 2 - 0.05 * (i % 7)},{label}")
    return write("tiny.csv", "\n".join(rows) + "\n")


@pytest.fixture
def tiny_config(write, tiny_csv):
    return write(
        "tiny.yaml",
        """
        seed: 1
        data:
          train: tiny.csv
          target: kind
        model:
          layers: [auto, 8, auto]
          dtype: float64
        training:
          learning_rate: 0.5
          epochs: 5
          batch_size: 8
        output: out/tiny.npz
        """,
    )


@pytest.fixture(params=["numpy", "polars"])
def block_parser(request, monkeypatch):
    """Run a streaming test twice: small blocks through NumPy's parser (as in real use), and
    through polars too, as a big file's blocks are (results and messages must not differ)."""
    if request.param == "polars":
        monkeypatch.setattr("nncli.tabular.fast.FAST_PATH_BYTES", 0)
    return request.param
