"""BLAS threads per matrix product (core/threads.py), the user's setting (--threads,
NNCLI_THREADS; commands/threads.py), and the project's rule that a config and seed give the
same weights whatever the thread count."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits
from typer.testing import CliRunner

from nncli.cli import app
from nncli.core import threads
from nncli.core.losses import get_loss
from nncli.core.network import MLP
from nncli.core.optimizers import get_optimizer
from nncli.core.schedules import get_schedule
from nncli.core.trainer import Trainer, TrainingPlan

runner = CliRunner()
NNCLI = Path(sys.executable).parent / "nncli"
SMALL = threads.SMALL_PRODUCT


@functools.lru_cache(maxsize=None)
def openblas():
    (library,) = ThreadpoolController().select(internal_api="openblas").lib_controllers  # NumPy's own
    return library


def blas_threads() -> int:
    """The thread count of the OpenBLAS NumPy runs on, as threadpoolctl reports it."""
    return openblas().get_num_threads()


@pytest.fixture
def two_threads():
    """The BLAS at two threads for the test (as on a 2-core machine), whatever the environment
    says; afterwards as it was. Nothing may be left configured by a failing test."""
    with threadpool_limits(limits=2, user_api="blas"):
        yield
        threads.reset()


# --- the policy --------------------------------------------------------------------------------
def test_small_products_get_one_thread_and_large_ones_the_default():
    assert threads_for_sizes(32, 64, 128) == 1  # a digits layer
    assert threads_for_sizes(128, 784, 256) == 4  # MNIST's first layer
    assert threads_for_sizes(1, 1, SMALL - 1) == 1
    assert threads_for_sizes(1, 1, SMALL) == 4


def threads_for_sizes(m, k, n):
    return threads.threads_for(m, k, n, setting=None, default=4)


@pytest.mark.parametrize("setting", [1, 2, 3])
def test_a_fixed_setting_wins_for_every_size(setting):
    for m, k, n in ((1, 1, 1), (32, 64, 128), (4096, 4096, 4096)):
        assert threads.threads_for(m, k, n, setting=setting, default=4) == setting


def test_a_setting_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        threads.configure(0)


def test_each_product_gets_its_count_and_reset_restores_it(two_threads):
    with threads.configured(None) as steering:
        assert steering
        threads.for_product(32, 64, 128)
        assert blas_threads() == 1
        threads.for_product(128, 784, 256)
        assert blas_threads() == 2
        threads.for_product(32, 64, 128)
        assert blas_threads() == 1
    assert blas_threads() == 2  # restored, though the last product wanted one


def test_a_fixed_count_applies_to_large_products_too(two_threads):
    with threads.configured(1):
        threads.for_product(4096, 4096, 4096)
        assert blas_threads() == 1
    assert blas_threads() == 2


def test_nothing_changes_until_configured(two_threads):
    threads.reset()
    threads.for_product(1, 1, 1)
    assert blas_threads() == 2


def test_the_count_is_a_function_of_the_shapes_not_of_what_ran_before(two_threads):
    with threads.configured(None):
        for previous in ((1, 1, 1), (4096, 4096, 4096)):
            threads.for_product(*previous)
            threads.for_product(128, 256, 64)  # 2 Mi multiply-adds: small
            assert blas_threads() == 1


# --- same weights whatever the thread count -------------------------------------------------------
def untrained(sizes, dtype=np.float32) -> MLP:
    return MLP.initialise(sizes, ["relu"] * (len(sizes) - 2) + ["softmax"], np.random.default_rng(1), dtype=dtype)


def train(sizes, optimizer: str, dtype=np.float32, rows=2048, batch=256, epochs=2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], rows)]
    network = untrained(sizes, dtype)
    plan = TrainingPlan(network=network, loss=get_loss("cross_entropy"),
                        optimizer=get_optimizer(optimizer, learning_rate=0.01, decay_mask=network.decay_mask()),
                        schedule=get_schedule("constant", 0.01, epochs), X=X, Y=Y, epochs=epochs, batch_size=batch,
                        metric="accuracy")
    Trainer(plan, np.random.default_rng(2), np.random.default_rng(3)).run()
    return network.parameters()


# Every product's inner dimension (fan-in forward, fan-out backward, the batch for the weight
# gradient) is at most 256: one block of OpenBLAS's inner loop on every x86 kernel, where the
# thread count cannot change a sum (docs/performance.md, "Threads"). The products reach
# 2**24 multiply-adds, so two threads really run them, and auto mixes one and two.
SIZES = [200, 256, 256, 10]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])  # update inside backprop (blas.py) / from gradient buffers
def test_same_weights_with_one_two_and_automatic_threads(two_threads, optimizer, dtype):
    assert threads.threads_for(256, 256, 256, None, 2) == 2  # some products do get two threads
    assert threads.threads_for(256, 256, 10, None, 2) == 1  # and some get one
    runs = {}
    for setting in (1, 2, None):
        with threads.configured(setting):
            runs[setting] = train(SIZES, optimizer, dtype)
    for setting in (2, None):
        for a, b in zip(runs[1], runs[setting]):
            assert np.array_equal(a, b), f"{setting} threads changed the weights"
    assert not np.array_equal(runs[1][0], untrained(SIZES, dtype).weights[0])  # the run did train


def test_automatic_threads_give_the_same_weights_every_time_on_a_large_first_layer(two_threads):
    # MNIST's 784 inputs: a forward product one thread and two round differently, so this is
    # the case where only a choice made from the shapes alone keeps a config reproducible.
    with threads.configured(None):
        first = train([784, 256, 10], "sgd", rows=2048, batch=128, epochs=1)
        second = train([784, 256, 10], "sgd", rows=2048, batch=128, epochs=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


# --- the command line -----------------------------------------------------------------------------
def run_train(config, *args, env=None):
    return runner.invoke(app, ["train", str(config), "-o", str(config.parent / "m.npz"), "--force", "--quiet", *args], env=env)


@pytest.fixture
def counts_during_run(monkeypatch):
    """The BLAS thread count right after each product's choice, while a command runs."""
    seen = []
    choose = threads.for_product

    def recording(m, k, n):
        choose(m, k, n)
        seen.append(blas_threads())

    monkeypatch.setattr(threads, "for_product", recording)
    return seen


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["--threads", "1"], {}, {1}),
    ([], {"NNCLI_THREADS": "1"}, {1}),
    (["--threads", "2"], {"NNCLI_THREADS": "1"}, {2}),  # the option wins
    (["--threads", "2"], {"NNCLI_THREADS": "many"}, {2}),  # and the variable is not even read
    ([], {"NNCLI_THREADS": "auto"}, {1}),  # the tiny config's products are all small
    ([], {"NNCLI_THREADS": ""}, {1}),
])
def test_train_runs_with_the_users_setting_and_restores_the_blas(two_threads, tiny_config, counts_during_run, args, env, expected):
    result = run_train(tiny_config, *args, env=env)
    assert result.exit_code == 0, result.output
    assert set(counts_during_run) == expected
    assert blas_threads() == 2


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_and_evaluate_take_threads(two_threads, tiny_config, tiny_csv, counts_during_run, command):
    assert run_train(tiny_config).exit_code == 0
    counts_during_run.clear()
    result = runner.invoke(app, [command, str(tiny_config.parent / "m.npz"), str(tiny_csv), "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert counts_during_run and set(counts_during_run) == {2}
    assert blas_threads() == 2


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two", "1e3", "2000", "9" * 50, "²"])
def test_a_bad_nncli_threads_is_one_line_and_exit_2(tiny_config, value):
    result = run_train(tiny_config, env={"NNCLI_THREADS": value})
    assert result.exit_code == 2
    assert "NNCLI_THREADS" in result.output and "expected a whole number of threads from 1 to 1024, or auto" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["0", "x", "5000"])
def test_a_bad_threads_option_is_exit_2(tiny_config, value):
    result = run_train(tiny_config, "--threads", value)
    assert result.exit_code == 2
    assert "--threads" in result.output


def test_the_installed_program_refuses_a_bad_nncli_threads(tiny_config):
    env = {"PATH": str(NNCLI.parent), "NNCLI_THREADS": "lots"}
    result = subprocess.run([str(NNCLI), "train", str(tiny_config), "-o", str(tiny_config.parent / "m.npz")], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr == ("nncli: error: environment variable NNCLI_THREADS='lots': expected a whole number of "
                             "threads from 1 to 1024, or auto\n")
    assert result.stdout == ""
