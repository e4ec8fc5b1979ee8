"""What a second attack pass found after the hardening: each case a real `nncli` process ending
in one `nncli: error: …` line with the documented exit code, never a traceback."""

import json
import subprocess

import numpy as np
import pytest

from tests.conftest import CONFIGS, DATASETS
from tests.test_subprocess import NNCLI


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iris")
    config = folder / "iris.yaml"
    config.write_text((CONFIGS / "iris.yaml").read_text().replace("../datasets", str(DATASETS)))
    subprocess.run([str(NNCLI), "train", str(config), "-o", str(folder / "m.npz"), "--quiet", "--set", "training.epochs=2"], check=True)
    return folder / "m.npz"


def _edited(model, target, edit):
    with np.load(model, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    edit(meta)
    np.savez(target, meta=np.array(json.dumps(meta)), **arrays)  # json.dumps writes \ud800 as an escape
    return target


def _one_line(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith("nncli: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _nncli(*args, **kwargs):
    return subprocess.run([str(NNCLI), *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.mark.parametrize("command", ["predict", "evaluate", "inspect"])
def test_a_lone_surrogate_in_a_model_files_names_is_refused(iris_model, tmp_path, command):
    def edit(meta):
        meta["classes"][1] = "versicolor\ud800"

    model = _edited(iris_model, tmp_path / "sur.npz", edit)
    args = [command, model] + ([DATASETS / "iris.csv"] if command != "inspect" else [])
    _one_line(_nncli(*args), 2, "metadata holds text that is not valid Unicode (a lone surrogate)")


def test_more_classes_than_the_budget_in_a_model_file_are_refused(iris_model, tmp_path):
    def edit(meta):
        meta["classes"] = [f"c{i:05d}" for i in range(1500)]
        meta["layers"][-1] = 1500

    model = _edited(iris_model, tmp_path / "wide.npz", edit)
    _one_line(_nncli("evaluate", model, DATASETS / "iris.csv"), 2, "lists 1,500 classes; nncli reads at most 1,000")


@pytest.mark.parametrize("redirect", ["stdout", "stdin"])
def test_a_closed_standard_stream_is_one_line(iris_model, redirect):
    if redirect == "stdout":
        result = subprocess.run(f"{NNCLI} predict {iris_model} {DATASETS / 'iris.csv'} >&-", shell=True,
                                capture_output=False, stderr=subprocess.PIPE, text=True, timeout=120)
        _one_line(result, 2, "standard output is closed")
    else:
        result = subprocess.run(f"{NNCLI} predict {iris_model} - <&-", shell=True, capture_output=True, text=True, timeout=120)
        _one_line(result, 2, "<stdin>: standard input is closed")


@pytest.mark.parametrize("variable", ["NNCLI_MAX_LINE_BYTES", "NNCLI_MAX_CONFIG_BYTES", "NNCLI_MAX_CLASSES"])
def test_a_budget_too_large_for_an_index_is_one_line(iris_model, variable):
    result = _nncli("predict", iris_model, DATASETS / "iris.csv", env={"PATH": "/usr/bin:/bin", variable: "9" * 35 + "T"})
    if variable == "NNCLI_MAX_CONFIG_BYTES":  # read by train, not predict
        result = _nncli("train", CONFIGS / "xor.yaml", "--dry-run", env={"PATH": "/usr/bin:/bin", variable: "9" * 35 + "T"})
    _one_line(result, 2, f"environment variable {variable}=", "at most 1 EiB")


def test_a_raised_config_budget_is_not_allocated_up_front():
    """2 GiB allowed for a 500-byte config, under a 1.5 GiB address-space cap."""
    import resource

    limit = 1_500_000_000
    result = subprocess.run([str(NNCLI), "train", str(CONFIGS / "xor.yaml"), "--print-config"], capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "NNCLI_MAX_CONFIG_BYTES": "2G"},
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert result.returncode == 0, result.stderr
    assert "learning_rate" in result.stdout
