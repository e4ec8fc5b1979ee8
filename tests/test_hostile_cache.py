"""Hostile parse caches and training from disk: every bad cache, folder or value is one line on
stderr (a warning and a fresh parse, or an error naming the cache) — never a traceback, never
a silent use of a cache that does not describe the CSV."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.core.encoding import DEFAULT_MISSING_VALUES
from nncli.files import datacache

runner = CliRunner()
TRAILER = len(datacache.MAGIC) + 8


@pytest.fixture
def labelled(write):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 3))
    labels = np.where(X.sum(axis=1) > 0, "cat", "dog")
    write("data.csv", "a,b,c,kind\n" + "".join(f"{x:.3f},{y:.3f},{z:.3f},{k}\n" for (x, y, z), k in zip(X, labels)))
    return write("run.yaml", """
        seed: 1
        data: {train: data.csv, target: kind, cache: cache}
        model: {layers: [auto, 8, auto], dtype: float64}
        training: {epochs: 2, batch_size: 16, learning_rate: 0.1}
        """)


def _train(config, output, *args):
    return runner.invoke(app, ["train", str(config), "-o", str(output), "--force", "--quiet", *map(str, args)])


def _one_line(result):
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stderr.count("\n") == 1, result.stderr


def _cache(config):
    [cache] = (config.parent / "cache").glob("*.nncli-cache")
    return cache


def _rewrite_meta(cache, change):
    data = cache.read_bytes()
    length = int.from_bytes(data[-TRAILER:-TRAILER + 8], "little")
    meta = json.loads(data[-TRAILER - length:-TRAILER])
    change(meta)
    text = json.dumps(meta).encode()
    cache.write_bytes(data[:-TRAILER - length] + text + len(text).to_bytes(8, "little") + datacache.MAGIC)


def _weights(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_a_cache_naming_columns_the_csv_lacks_is_ignored_not_a_traceback(labelled, tmp_path, in_memory):
    memory = ["--set", f"data.in_memory={in_memory}"]
    assert _train(labelled, tmp_path / "a.npz", *memory).exit_code == 0
    _rewrite_meta(_cache(labelled), lambda meta: meta.update(header=["x", "b", "c", "kind"]))
    result = _train(labelled, tmp_path / "b.npz", *memory)
    _one_line(result)
    assert result.exit_code == 0 and "ignored" in result.stderr, result.output


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_a_cache_whose_column_names_are_swapped_is_not_trusted(labelled, tmp_path, in_memory):
    """The cache's header says a,b where the CSV says b,a: training on it silently swaps two
    features (the CSV's first line is cheap to compare)."""
    memory = ["--set", f"data.in_memory={in_memory}"]
    assert _train(labelled, tmp_path / "a.npz", *memory).exit_code == 0
    _rewrite_meta(_cache(labelled), lambda meta: meta.update(header=["b", "a", "c", "kind"]))
    result = _train(labelled, tmp_path / "b.npz", *memory)
    assert result.exit_code == 0 and "ignored" in result.stderr, result.output
    a, b = _weights(tmp_path / "a.npz"), _weights(tmp_path / "b.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a)


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_damaged_text_values_in_a_cache_are_not_blamed_on_the_csv(labelled, tmp_path, in_memory):
    memory = ["--set", f"data.in_memory={in_memory}"]
    assert _train(labelled, tmp_path / "a.npz", *memory).exit_code == 0
    _rewrite_meta(_cache(labelled), lambda meta: meta.update(text_values={"kind": ["cat", "cat"]}))
    result = _train(labelled, tmp_path / "b.npz", *memory)
    _one_line(result)
    assert "single class" not in result.stderr, result.stderr  # data.csv has two classes
    assert "parse cache" in result.stderr, result.stderr


def test_from_disk_with_a_directory_at_the_caches_name_is_one_line(labelled, tmp_path):
    memory = ["--set", "data.in_memory=false"]
    assert _train(labelled, tmp_path / "a.npz", *memory).exit_code == 0
    cache = _cache(labelled)
    cache.unlink()
    cache.mkdir()
    result = _train(labelled, tmp_path / "b.npz", *memory)
    _one_line(result)
    assert result.exit_code in (0, 2), result.output


def test_from_disk_with_a_cache_folder_through_a_file_is_one_line(labelled, tmp_path):
    (labelled.parent / "plain").write_text("a file, not a folder\n")
    config = labelled.parent / "through.yaml"
    config.write_text(labelled.read_text().replace("cache: cache", "cache: plain/sub, in_memory: false"))
    result = _train(config, tmp_path / "b.npz")
    _one_line(result)
    assert result.exit_code == 2 and "data.cache" in result.stderr, result.output


def test_from_disk_a_value_too_large_to_normalise_is_the_in_memory_error(write, tmp_path):
    rows = "".join(f"{1e300 if i == 3 else i},{'x' if i % 2 else 'z'}\n" for i in range(20))
    write("big.csv", "a,y\n" + rows)
    config = write("big.yaml", """
        seed: 1
        data: {train: big.csv, target: y, cache: cache}
        model: {layers: [auto, 4, auto], dtype: float64}
        training: {epochs: 2, batch_size: 4}
        """)
    memory = _train(config, tmp_path / "m.npz", "--set", "data.in_memory=true")
    disk = _train(config, tmp_path / "d.npz", "--set", "data.in_memory=false")
    assert memory.exit_code == 2 and "too large to normalise" in memory.stderr
    _one_line(disk)  # not RuntimeWarnings from ScalerFit, then "training diverged"
    assert disk.exit_code == 2 and "too large" in disk.stderr, disk.stderr


def test_from_disk_damage_advice_is_not_a_config_error(labelled, tmp_path):
    """`data.cache: off` with `in_memory: false` is itself refused: the advice must not be it."""
    memory = ["--set", "data.in_memory=false"]
    assert _train(labelled, tmp_path / "a.npz", *memory).exit_code == 0
    cache = _cache(labelled)
    data = bytearray(cache.read_bytes())
    data[datacache.HEADER_BYTES + 8 : datacache.HEADER_BYTES + 16] = np.float64(np.nan).tobytes()
    cache.write_bytes(bytes(data))
    result = _train(labelled, tmp_path / "b.npz", *memory)
    _one_line(result)
    assert "data.cache: off" not in result.stderr, result.stderr


def test_rows_from_disk_come_from_the_cache_that_was_checked(labelled, tmp_path):
    """Another run may replace the cache (atomically, by rename) while this one trains — e.g.
    an in-memory run writes the table as float64 where the streamed one is float32. The rows
    read afterwards must still be the checked file's, not the new file's bytes read at the old
    file's offsets and dtype."""
    ints = labelled.parent / "ints.csv"
    ints.write_text("a,b,kind\n" + "".join(f"{i % 7},{i % 5},{'pq'[i % 2]}\n" for i in range(200)))
    config = load_config(labelled, [f"data.train={ints}", "data.in_memory=false", "model.dtype=float32",
                                    "data.normalize=none", "data.shuffle=false"])
    run = prepare_training(config)
    before = np.concatenate([rows.copy() for _, rows in run.data.X_train.blocks()])
    cache = _cache(labelled)
    table = datacache.read_cache(cache, datacache.fingerprint(ints), datacache.ParseRequest(("kind",), "float32", DEFAULT_MISSING_VALUES), 1 << 20,
                                 ["a", "b", "kind"])
    assert table.dtype == np.float32
    widened = np.array(table.values, dtype=np.float64)
    datacache.write_cache(cache, datacache.fingerprint(ints), datacache.ParseRequest(("kind",), "float32", DEFAULT_MISSING_VALUES),
                          table.header, widened, table.text_values)
    run.data.X_train._window_at = None  # (a new window is read)
    after = np.concatenate([rows.copy() for _, rows in run.data.X_train.blocks()])
    assert np.array_equal(before, after)


@pytest.mark.parametrize("in_memory", ["true", "false"])
def test_a_cache_bigger_than_the_address_space_left_is_one_line(labelled, tmp_path, in_memory):
    """Under `ulimit -v`, mapping a big cache fails with ENOMEM: a warning and a parse (in
    memory) or one line naming the cache (from disk) — not a traceback. The cache here is a
    sparse file of 4 GiB whose fingerprint matches the CSV."""
    import resource
    import subprocess
    import sys

    memory = ["--set", f"data.in_memory={in_memory}"]
    assert _train(labelled, tmp_path / "a.npz", *memory).exit_code == 0
    cache = _cache(labelled)
    data = cache.read_bytes()
    length = int.from_bytes(data[-TRAILER:-TRAILER + 8], "little")
    meta = data[-TRAILER - length:]
    descr = "<f8" if data[:100].find(b"<f8") >= 0 else "<f4"
    itemsize = 8 if descr == "<f8" else 4
    rows = (4 << 30) // (4 * itemsize)
    header = datacache._npy_header((rows, 4), np.dtype(descr))
    with open(cache, "wb") as f:
        f.write(header)
        f.seek(datacache.HEADER_BYTES + rows * 4 * itemsize)
        f.write(meta)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    result = subprocess.run([sys.executable, "-m", "nncli", "train", str(labelled), "-o", str(tmp_path / "b.npz"),
                             "--force", "--quiet", *memory], capture_output=True, text=True, preexec_fn=limit, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr[-500:]
    assert result.stderr.count("\n") == 1 and result.returncode in (0, 2), result.stderr[-500:]
