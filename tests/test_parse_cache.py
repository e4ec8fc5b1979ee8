"""The parse cache (`data.cache`): read back bit for bit, made anew when the CSV changes, and
never trusted — a damaged or foreign cache is a warning and a fresh parse."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands import parse_cache
from nncli.files import datacache
from nncli.tabular.parse import read_header

runner = CliRunner()


def _weights(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files if name != "meta"}


def _train(config, output, *args, env=None):
    result = runner.invoke(app, ["train", str(config), "-o", str(output), "--json", "--force", *map(str, args)], env=env)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    return document, result.stderr


@pytest.fixture
def labelled(write):
    """A classification CSV with text labels, and a config caching into ./cache."""
    rng = np.random.default_rng(0)
    rows = ["x1,x2,x3,kind"] + [f"{a:.3f},{b:.3f},{int(c)},{'ab'[int(a + b > 0)]}{'!' if c > 5 else ''}"
                                for a, b, c in zip(*rng.normal(size=(2, 300)), rng.integers(0, 9, 300))]
    csv = write("data.csv", "\n".join(rows) + "\n")
    config = write("run.yaml", """
        seed: 3
        data: {train: data.csv, target: kind, cache: cache}
        model: {layers: [auto, 8, auto], dtype: float32}
        training: {epochs: 3, batch_size: 16}
        """)
    return csv, config


def _cache_file(config):
    files = list((config.parent / "cache").glob("*.nncli-cache"))
    assert len(files) == 1, files
    return files[0]


def test_second_run_reads_the_cache_and_trains_the_same_weights(labelled, tmp_path):
    csv, config = labelled
    first, _ = _train(config, tmp_path / "a.npz")
    second, stderr = _train(config, tmp_path / "b.npz")
    off, _ = _train(config, tmp_path / "c.npz", "--set", "data.cache=off")
    assert [use["outcome"] for use in first["data_cache"]] == ["written"]
    assert [use["outcome"] for use in second["data_cache"]] == ["read"]
    assert off["data_cache"] == [] and stderr == ""
    a, b, c = (_weights(tmp_path / name) for name in ("a.npz", "b.npz", "c.npz"))
    for name in a:
        assert np.array_equal(a[name], b[name]) and np.array_equal(a[name], c[name]), name
    assert second["classes"] == first["classes"] == ["a", "a!", "b", "b!"]


def test_the_cache_is_a_npy_file_of_the_parsed_table(labelled, tmp_path):
    csv, config = labelled
    _train(config, tmp_path / "a.npz")
    table = np.load(_cache_file(config), allow_pickle=False)
    assert table.shape == (300, 4) and table.dtype == np.float64  # decimals: not exactly float32
    first = csv.read_text().splitlines()[1].split(",")
    assert table[0, 2] == float(first[2])  # an integer column, exactly


def test_a_changed_csv_is_parsed_again_without_a_warning(labelled, tmp_path):
    csv, config = labelled
    _train(config, tmp_path / "a.npz")
    csv.write_text(csv.read_text() + "9.0,9.0,1,zz\n")
    document, stderr = _train(config, tmp_path / "b.npz")
    assert [use["outcome"] for use in document["data_cache"]] == ["written"] and stderr == ""
    assert "zz" in document["classes"]
    assert np.load(_cache_file(config)).shape == (301, 4)


def _damage(path, how):
    data = bytearray(path.read_bytes())
    header = datacache.HEADER_BYTES
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "trailer":
        data[-3] ^= 0xFF
    elif how == "nan":
        data[header : header + 8] = np.float64(np.nan).tobytes()
    elif how == "code":
        data[header + 24 : header + 32] = np.float64(7).tobytes()  # row 0's label code: only 4 labels
    elif how == "fortran":
        data[:header] = data[:header].replace(b"'fortran_order': False", b"'fortran_order': True ")
    elif how == "int64":
        data[:header] = data[:header].replace(b"'<f8'", b"'<i8'")
    elif how == "meta-length":
        data[-len(datacache.MAGIC) - 8 : -len(datacache.MAGIC)] = (1 << 62).to_bytes(8, "little")
    elif how == "json":
        end = len(data) - len(datacache.MAGIC) - 8
        data[end - 5 : end] = b"!!!!!"
    elif how == "pickle":
        data = bytearray(b"\x80\x04\x95" + bytes(100))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncated", "trailer", "nan", "code", "fortran", "int64", "meta-length", "json", "pickle"])
def test_a_damaged_cache_is_a_warning_and_a_fresh_parse(labelled, tmp_path, how):
    csv, config = labelled
    _train(config, tmp_path / "a.npz")
    cache = _cache_file(config)
    _damage(cache, how)
    document, stderr = _train(config, tmp_path / "b.npz")
    assert stderr.startswith(f"nncli: warning: parse cache {cache} ignored (")
    assert stderr.endswith("the CSV file was parsed again\n") and stderr.count("\n") == 1
    assert [use["outcome"] for use in document["data_cache"]] == ["written"]
    a, b = _weights(tmp_path / "a.npz"), _weights(tmp_path / "b.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert np.load(cache).shape == (300, 4)  # written anew, whole


def test_a_cache_that_cannot_be_written_is_a_warning_and_the_run_goes_on(labelled, tmp_path):
    csv, config = labelled
    (config.parent / "cache").write_text("a file where the folder would be")
    document, stderr = _train(config, tmp_path / "a.npz")
    assert stderr.startswith("nncli: warning: parse cache ") and " not written: " in stderr
    assert [use["outcome"] for use in document["data_cache"]] == ["not written"]
    assert (tmp_path / "a.npz").exists()


def test_a_dry_run_reads_but_never_writes_a_cache(labelled, tmp_path):
    csv, config = labelled
    result = runner.invoke(app, ["train", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert not (config.parent / "cache").exists()
    _train(config, tmp_path / "a.npz")
    cache = _cache_file(config)
    _damage(cache, "nan")
    damaged = cache.read_bytes()
    result = runner.invoke(app, ["train", str(config), "--dry-run"])
    assert result.exit_code == 0 and result.stderr.startswith(f"nncli: warning: parse cache {cache} ignored (it holds values")
    assert cache.read_bytes() == damaged


def test_auto_caches_only_large_files_in_the_users_cache_folder(write, tmp_path, monkeypatch):
    csv = write("data.csv", "a,b,y\n" + "".join(f"{i % 7},{i % 3},{i % 5 * 0.5}\n" for i in range(400)))
    config = write("run.yaml", "seed: 1\ndata: {train: data.csv}\nmodel: {layers: [auto, 4, auto]}\n"
                               "training: {loss: mse, epochs: 1}\n")
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    document, _ = _train(config, tmp_path / "a.npz", env=env)
    assert document["data_cache"] == [] and not (tmp_path / "xdg").exists()  # small: no cache
    monkeypatch.setattr(parse_cache, "CACHE_FROM_BYTES", csv.stat().st_size)
    document, _ = _train(config, tmp_path / "b.npz", env=env)
    [use] = document["data_cache"]
    assert use["outcome"] == "written" and os.path.dirname(use["cache"]) == str(tmp_path / "xdg" / "nncli")
    document, _ = _train(config, tmp_path / "c.npz", env=env)
    assert [use["outcome"] for use in document["data_cache"]] == ["read"]


def test_resume_reads_the_cache_and_checks_the_csv(labelled, tmp_path):
    csv, config = labelled
    _train(config, tmp_path / "a.npz", "--set", "training.checkpoint_every=1")
    resume = ["train", "--resume", str(tmp_path / "a.ckpt.npz"), "--set", "training.epochs=5", "--json", "--force"]
    result = runner.invoke(app, resume)
    assert result.exit_code == 0, result.output
    assert [use["outcome"] for use in json.loads(result.stdout)["data_cache"]] == ["read"]
    csv.write_text(csv.read_text().replace("\n", "\r\n"))  # the same rows, another file: resume refuses
    result = runner.invoke(app, resume[:-2] + ["--set", "training.epochs=6", "--force"])
    assert result.exit_code == 2 and str(csv) in result.stderr and "changed" in result.stderr, result.output


def test_a_cache_of_another_request_is_not_read(labelled, tmp_path):
    """The same file read as a regression table (no text columns) is a different cache entry;
    a cache moved under another request's name is refused, not misread."""
    csv, config = labelled
    _train(config, tmp_path / "a.npz")
    cache = _cache_file(config)
    request = datacache.ParseRequest((), "float32")
    with pytest.raises(datacache.CacheProblem, match="another reading"):
        datacache.read_cache(cache, datacache.fingerprint(csv), request, 1 << 20, read_header(csv))


def test_a_link_at_the_caches_name_is_replaced_not_followed(labelled, tmp_path):
    csv, config = labelled
    _train(config, tmp_path / "a.npz")
    cache = _cache_file(config)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache.unlink()
    cache.symlink_to(victim)
    document, stderr = _train(config, tmp_path / "b.npz")
    assert victim.read_text() == "precious" and not cache.is_symlink()
    assert np.load(cache).shape == (300, 4)


def test_a_fifo_at_the_caches_name_is_ignored_not_opened(labelled, tmp_path):
    csv, config = labelled
    _train(config, tmp_path / "a.npz")
    cache = _cache_file(config)
    cache.unlink()
    os.mkfifo(cache)
    document, stderr = _train(config, tmp_path / "b.npz")
    assert "not a regular file" in stderr and [use["outcome"] for use in document["data_cache"]] == ["written"]
