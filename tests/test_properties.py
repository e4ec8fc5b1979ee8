"""Property-based tests: whatever bytes or text the loaders are fed, the only outcomes are a
result or an NncliError (a one-line message) — never another exception, never a hang."""

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nncli.config import load_config
from nncli.errors import NncliError
from nncli.files.model import load_model
from nncli.tabular.source import open_csv, read_csv

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

csv_text = st.lists(
    st.lists(st.one_of(st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{1,3})?", fullmatch=True), st.text(max_size=6)), min_size=1, max_size=5),
    max_size=8,
).map(lambda rows: "\n".join(",".join(row) for row in rows))
yaml_text = st.one_of(
    st.text(max_size=200),
    st.dictionaries(st.sampled_from(["seed", "data", "model", "training", "output", "x"]), st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=10,
    )).map(lambda d: __import__("yaml").safe_dump(d)),
)


@contextlib.contextmanager
def _in_file(content: bytes | str, suffix: str) -> Iterator[Path]:
    """``content`` as a file for one example, removed after it (Hypothesis runs hundreds: a
    folder left per example filled /tmp with ~450 a run)."""
    with tempfile.TemporaryDirectory(prefix="nncli-example-") as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
        yield path


def test_an_example_file_is_removed_after_its_example():
    with _in_file(b"a,b\n1,2\n", ".csv") as path:
        assert path.read_bytes() == b"a,b\n1,2\n"
    assert not path.parent.exists()


def _only_results_or_nncli_errors(call) -> None:
    try:
        call()
    except NncliError as exc:
        assert str(exc) and "\n" not in str(exc).strip()


@SETTINGS
@given(st.one_of(st.binary(max_size=300), csv_text))
def test_csv_reader(content):
    with _in_file(content, ".csv") as path:

        def read():
            table = read_csv(path, text_columns=())
            assert np.isfinite(table.values).all()

        _only_results_or_nncli_errors(read)

        def stream():
            with open_csv(path, chunk_bytes=32) as s:
                for chunk in s.chunks(s.header[-1:]):
                    assert np.isfinite(chunk.values).all()

        _only_results_or_nncli_errors(stream)
        with mock.patch("nncli.tabular.fast.FAST_PATH_BYTES", 0):  # through polars
            _only_results_or_nncli_errors(stream)


@SETTINGS
@given(st.one_of(st.binary(max_size=300), yaml_text))
def test_config_loader(content):
    with _in_file(content, ".yaml") as path:
        _only_results_or_nncli_errors(lambda: load_config(path, ["training.epochs=2"]))


@SETTINGS
@given(st.binary(max_size=400))
def test_model_loader_on_random_bytes(content):
    with _in_file(content, ".npz") as path:
        _only_results_or_nncli_errors(lambda: load_model(path))


@SETTINGS
@given(st.data())
def test_model_loader_on_damaged_real_files(data):
    """Flip, cut or splice bytes of a real model file."""
    from tests.test_hostile import model_meta, npy, npz

    original = bytearray(npz({"meta": model_meta(), "W1": npy(np.eye(2))}))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    with _in_file(bytes(original[:cut]), ".npz") as path:
        _only_results_or_nncli_errors(lambda: load_model(path))
