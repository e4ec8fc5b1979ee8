import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.errors import ModelFileError
from nncli.files.model import load_model, save_model


@pytest.fixture
def trained(tiny_config):
    return prepare_training(load_config(tiny_config)).fit()


@pytest.fixture
def model_path(trained, tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, trained)
    return path


def _error(path):
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    return str(info.value)


def _rewrite(source, target, change):
    """Copy an .npz archive, letting ``change(name, bytes) -> bytes | None`` edit members."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
    return target


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _edit_meta(source, target, edit):
    def change(name, data):
        if name != "meta.npy":
            return data
        meta = json.loads(str(np.lib.format.read_array(io.BytesIO(data))))
        edit(meta)
        return _npy(np.array(json.dumps(meta)))

    return _rewrite(source, target, change)


def test_round_trip_keeps_arrays_and_metadata(trained, model_path):
    loaded = load_model(model_path)
    for a, b in zip(trained.network.parameters(), loaded.network.parameters()):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert loaded.classes == ["cat", "dog", "eel"]
    assert loaded.features == ["a", "b"] and loaded.targets == ["kind"]
    assert loaded.network.activation_names == ["relu", "softmax"]
    assert loaded.history == trained.history and len(loaded.history) == 5
    np.testing.assert_array_equal(loaded.feature_scaler.offset, trained.feature_scaler.offset)
    X = np.array([[0.0, 0.0], [2.0, 4.0]])
    np.testing.assert_array_equal(loaded.outputs(X), trained.outputs(X))


def test_plain_numpy_can_read_the_file(model_path):
    with np.load(model_path, allow_pickle=False) as archive:
        assert archive["W1"].shape == (2, 8) and archive["b1"].shape == (8,)
        assert archive["W2"].shape == (8, 3)
        meta = json.loads(str(archive["meta"]))
    assert meta["format"] == "nncli-model" and meta["format_version"] == 2
    assert meta["config"]["model"]["layers"] == [2, 8, 3]


def test_save_is_atomic_and_leaves_no_temp_files(trained, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    save_model(folder / "m.npz", trained)
    save_model(folder / "m.npz", trained)
    assert sorted(p.name for p in folder.iterdir()) == ["m.npz"]


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "empty file"),
        (pickle.dumps({"W1": [1]}), "a Python pickle (nncli never loads pickles"),
        (b"a,b\n1,2\n", "not a zip/.npz archive"),
        (bytes(range(256)) * 4, "not a zip/.npz archive"),
        (_npy(np.zeros(3)), "a single .npy array"),
    ],
)
def test_foreign_files_are_refused(write, content, expected):
    path = write("m.npz", content)
    message = _error(path)
    assert message.startswith(str(path)) and expected in message


def test_truncated_file(model_path, tmp_path):
    data = model_path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 30):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        assert "damaged or truncated" in _error(path)


def test_missing_file_and_folder(tmp_path):
    assert _error(tmp_path / "no.npz").endswith("model file not found")
    assert "is a folder" in _error(tmp_path)


def test_npz_without_meta(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, W1=np.zeros((2, 2)))
    assert "without nncli metadata" in _error(path)


def test_object_arrays_are_refused_before_unpickling(model_path, tmp_path):
    path = _rewrite(model_path, tmp_path / "evil.npz", lambda n, d: _npy(np.array([object()], dtype=object)) if n == "W1.npy" else d)
    assert "holds Python objects; refusing to load it" in _error(path)
    path = _rewrite(model_path, tmp_path / "evil2.npz", lambda n, d: _npy(np.array({"x": 1}, dtype=object)) if n == "meta.npy" else d)
    assert "holds Python objects" in _error(path)


def test_wrong_format_version(model_path, tmp_path):
    path = _edit_meta(model_path, tmp_path / "v.npz", lambda m: m.update(format_version=99))
    assert "model format version 99 is not supported" in _error(path)
    path = _edit_meta(model_path, tmp_path / "f.npz", lambda m: m.update(format="other"))
    assert "not an nncli model file" in _error(path)


def test_wrong_shapes_dtypes_and_missing_arrays(model_path, tmp_path):
    path = _rewrite(model_path, tmp_path / "s.npz", lambda n, d: _npy(np.zeros((3, 8))) if n == "W1.npy" else d)
    assert "array 'W1' has shape (3, 8), expected (2, 8)" in _error(path)
    path = _rewrite(model_path, tmp_path / "d.npz", lambda n, d: _npy(np.zeros((2, 8), np.float32)) if n == "W1.npy" else d)
    assert "array 'W1' has dtype float32, expected float64" in _error(path)
    path = _rewrite(model_path, tmp_path / "missing.npz", lambda n, d: None if n == "b2.npy" else d)
    assert "array 'b2' is missing" in _error(path)


def test_giant_declared_shape_is_refused_before_allocation(model_path, tmp_path):
    path = _edit_meta(model_path, tmp_path / "g.npz", lambda m: m.update(layers=[2, 10**6, 10**6, 3], activations=["relu"] * 3, features=["a", "b"]))
    assert "implausibly large" in _error(path)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**11,)})
    huge_header = buffer.getvalue()  # declares 800 GB, holds nothing
    path = _rewrite(model_path, tmp_path / "h.npz", lambda n, d: huge_header if n == "W1.npy" else d)
    assert "array 'W1' has shape (100000000000,)" in _error(path)


def test_inconsistent_metadata(model_path, tmp_path):
    path = _edit_meta(model_path, tmp_path / "a.npz", lambda m: m.update(activations=["relu", "bogus"]))
    assert "unknown activation 'bogus'" in _error(path)
    path = _edit_meta(model_path, tmp_path / "c.npz", lambda m: m.update(classes=["x", "y"]))
    assert "implies 2 outputs but the last layer has 3" in _error(path)
    path = _edit_meta(model_path, tmp_path / "l.npz", lambda m: m.update(layers="many"))
    assert "metadata field layers" in _error(path)


def test_saved_file_has_the_usual_permissions(trained, tmp_path):
    import os

    path = tmp_path / "perm.npz"
    save_model(path, trained)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_unwritable_location_is_an_output_error(trained, tmp_path):
    from nncli.errors import OutputError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        save_model(blocker / "m.npz", trained)


def test_the_file_records_what_reproducing_it_needs(model_path):
    import json

    with np.load(model_path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
    assert meta["config"]["seed"] == 1 and meta["numpy_version"] == np.__version__
    assert meta["nncli_version"] and meta["python_version"] and "threads" in meta["blas"]
    assert isinstance(meta["blas"]["fused_update_available"], bool)


def test_disk_full_while_writing_leaves_the_old_file_and_no_temp(trained, tmp_path, monkeypatch):
    import errno
    import os

    from nncli.errors import OutputError

    folder = tmp_path / "models"
    folder.mkdir()
    save_model(folder / "m.npz", trained)
    before = (folder / "m.npz").read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=r"m\.npz: cannot write: No space left on device"):
        save_model(folder / "m.npz", trained)
    assert (folder / "m.npz").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["m.npz"]


def test_non_finite_or_contradictory_contents_are_refused(model_path, tmp_path):
    path = _rewrite(model_path, tmp_path / "nan.npz", lambda n, d: _npy(np.full((2, 8), np.nan)) if n == "W1.npy" else d)
    assert "array 'W1' holds NaN or infinite values" in _error(path)
    path = _edit_meta(model_path, tmp_path / "s.npz", lambda m: m["feature_scaler"].update(scale=[0.0, 1.0]))
    assert "normalisation scales must be positive" in _error(path)
    path = _edit_meta(model_path, tmp_path / "d.npz", lambda m: m.update(classes=["cat", "cat", "eel"]))
    assert "lists a name twice in 'classes'" in _error(path)
    path = _edit_meta(model_path, tmp_path / "l.npz", lambda m: m.update(loss="mse"))
    assert "pairs loss 'mse' with class list" in _error(path)
    path = _edit_meta(model_path, tmp_path / "v.npz", lambda m: m.update(format_version=True))
    assert "format version True is not supported" in _error(path)


def test_damaged_metadata_is_refused_without_a_traceback(model_path, tmp_path):
    deep = "[" * 200000 + "]" * 200000
    path = _rewrite(model_path, tmp_path / "deep.npz", lambda n, d: _npy(np.array(deep)) if n == "meta.npy" else d)
    assert "metadata nests too deeply" in _error(path)

    def nan_meta(name, data):
        if name != "meta.npy":
            return data
        text = str(np.lib.format.read_array(io.BytesIO(data))).replace('"metrics": {', '"metrics": {"x": NaN, ')
        return _npy(np.array(text))

    assert "metadata holds NaN" in _error(_rewrite(model_path, tmp_path / "nanmeta.npz", nan_meta))
    raw = model_path.read_bytes()
    compressed = tmp_path / "z.npz"
    with zipfile.ZipFile(model_path) as zin, zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    data = bytearray(compressed.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the compressed stream of a member
    compressed.write_bytes(bytes(data))
    assert raw and ("damaged or truncated" in _error(compressed) or "malformed" in _error(compressed))
