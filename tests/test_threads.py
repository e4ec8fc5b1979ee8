"""BLAS threads per matrix product (core/threads.py) and by load (commands/threads.py measures
it), the user's setting (--threads, NNCLI_THREADS), and the project's rule that a config and
seed give the same weights whatever the thread count (core/blas.py keeps every product's
inner dimension within one OpenBLAS block)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits
from typer.testing import CliRunner

from nncli.cli import app
from nncli.commands import threads as command_threads
from nncli.commands.threads import CpuTimes, IdleCores, free_cores
from nncli.core import threads
from nncli.core.blas import K_BLOCK, bundled_openblas, exact_on_any_threads, gemm_into
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
    # NumPy's own (scikit-learn's SciPy, imported by other tests in this process, loads another)
    bundled = {os.path.realpath(path) for path in bundled_openblas()}
    libraries = ThreadpoolController().select(internal_api="openblas").lib_controllers
    (library,) = [lib for lib in libraries if os.path.realpath(lib.filepath) in bundled] or libraries
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


# --- the load --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("free", "expected"), [(None, 4), (4.0, 4), (9.0, 4), (2.6, 3), (1.4, 1), (0.6, 1), (0.0, 1)])
def test_large_products_get_no_more_threads_than_free_cores(free, expected):
    assert threads.threads_for(128, 784, 256, setting=None, default=4, free_cores=free) == expected


@pytest.mark.parametrize("free", [None, 0.0, 4.0])
def test_the_load_changes_neither_small_products_nor_a_fixed_setting(free):
    assert threads.threads_for(32, 64, 128, setting=None, default=4, free_cores=free) == 1
    assert threads.threads_for(4096, 4096, 4096, setting=3, default=4, free_cores=free) == 3


@pytest.mark.parametrize(("before", "after", "expected"), [
    (CpuTimes(10.0, 100.0, 5.0), CpuTimes(11.0, 100.2, 5.2), 2.0),  # only we ran
    (CpuTimes(10.0, 100.0, 5.0), CpuTimes(11.0, 101.5, 5.5), 1.0),  # others kept one core busy
    (CpuTimes(10.0, 100.0, 5.0), CpuTimes(10.5, 101.0, 5.0), 0.0),  # others took both
    (CpuTimes(10.0, 100.0, 5.0), CpuTimes(11.0, 100.9, 6.0), 2.0),  # our clock ran ahead of the ticks
])
def test_free_cores_are_the_cores_less_what_other_processes_used(before, after, expected):
    assert free_cores(before, after, cores=2) == pytest.approx(expected)


def test_free_cores_are_unknown_without_elapsed_time():
    reading = CpuTimes(10.0, 100.0, 5.0)
    assert free_cores(reading, reading, cores=2) is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="measured from Linux's /proc/stat")
def test_idle_cores_measures_between_zero_and_the_cores_we_may_use():
    measure = IdleCores()
    time.sleep(0.05)
    free = measure()
    assert 0.0 <= free <= len(os.sched_getaffinity(0))


class FakeLoad:
    """Free cores read from a list, one per look, counting the looks."""

    def __init__(self, *free):
        self.free, self.looks = list(free), 0

    def __call__(self):
        self.looks += 1
        return self.free[(self.looks - 1) % len(self.free)]


@pytest.fixture
def look_every_time(monkeypatch):
    monkeypatch.setattr(threads, "FIRST_LOOK", 0.0)
    monkeypatch.setattr(threads, "LOOK_EVERY", 0.0)


def test_auto_drops_to_one_thread_while_other_processes_keep_the_cores_busy(two_threads, look_every_time):
    load = FakeLoad(2.0, 0.3, 1.8)
    with threads.configured(None, load):
        for expected in (2, 1, 2):
            threads.for_product(128, 784, 256)
            assert blas_threads() == expected
        threads.for_product(32, 64, 128)  # a small product: one thread, and no look
        assert blas_threads() == 1 and load.looks == 3
    assert blas_threads() == 2


def test_auto_looks_at_the_load_at_most_once_a_second(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "FIRST_LOOK", 0.0)
    load = FakeLoad(0.0)
    with threads.configured(None, load):
        for _ in range(1000):
            threads.for_product(128, 784, 256)
        assert load.looks == 1 and blas_threads() == 1


def test_the_first_look_waits_a_moment_and_a_fixed_setting_never_looks(two_threads):
    load = FakeLoad(0.0)
    with threads.configured(None, load):
        threads.for_product(128, 784, 256)  # before FIRST_LOOK: the size rule alone
        assert blas_threads() == 2 and load.looks == 0
    with threads.configured(2, load):
        time.sleep(threads.FIRST_LOOK)
        threads.for_product(128, 784, 256)
        assert blas_threads() == 2 and load.looks == 0


@pytest.mark.parametrize(("option", "measured"), [(None, True), ("auto", True), ("1", False), ("2", False)])
def test_the_command_line_measures_the_load_only_for_auto(two_threads, monkeypatch, option, measured):
    monkeypatch.delenv("NNCLI_THREADS", raising=False)
    with command_threads.blas_threads(option):
        assert isinstance(threads._policy.measure, IdleCores) == measured


def test_a_command_reading_ahead_leaves_its_parser_a_core_from_the_first_product(two_threads, monkeypatch):
    monkeypatch.delenv("NNCLI_THREADS", raising=False)
    monkeypatch.setattr(IdleCores, "__init__", lambda self, reserved=0: _fake_idle(self, reserved, cores=2))
    with command_threads.blas_threads(None, reading_ahead=True):
        threads.for_product(128, 784, 256)  # before the first look: the parser's core already spared
        assert blas_threads() == 1
    with command_threads.blas_threads(None):
        threads.for_product(128, 784, 256)  # nothing read ahead: both cores
        assert blas_threads() == 2
    with command_threads.blas_threads("2", reading_ahead=True):
        threads.for_product(128, 784, 256)  # a fixed setting is the user's
        assert blas_threads() == 2


@pytest.mark.parametrize(("name", "content", "reserved"), [
    ("d.csv", b"a,b\n1,2\n", 1),  # a CSV stream parses ahead in a thread: its parser gets a core
    ("d.parquet", b"PAR1", 0),  # a Parquet stream reads in the caller's thread: nothing to spare
    ("data", b"PAR1....", 0),  # (told by its first bytes)
])
def test_a_streaming_command_spares_a_core_only_for_a_csv_parser(two_threads, monkeypatch, tmp_path, name, content, reserved):
    monkeypatch.delenv("NNCLI_THREADS", raising=False)
    (tmp_path / name).write_bytes(content)
    with command_threads.stream_threads(None, str(tmp_path / name)):
        assert threads._policy.measure.reserved == reserved
    with command_threads.stream_threads(None, "-"):  # stdin is read as CSV
        assert threads._policy.measure.reserved == 1


def _fake_idle(idle: IdleCores, reserved: int, cores: int) -> None:
    idle.reserved, idle.cores, idle.names, idle.tick, idle.last = reserved, cores, set(), 100, None


def test_idle_cores_less_the_reserved_ones_are_never_below_zero(monkeypatch):
    readings = iter([CpuTimes(10.0, 100.0, 5.0), CpuTimes(11.0, 100.2, 5.0), CpuTimes(12.0, 101.9, 5.0)])
    monkeypatch.setattr(IdleCores, "read", lambda self: next(readings))
    measure = IdleCores(reserved=1)
    measure.cores = 2
    assert measure() == pytest.approx(0.8)  # others took 0.2 of 2 cores; one is the parser's
    assert measure() == 0.0  # others took 1.7: nothing left beside the parser


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
# gradient) is at most 256, one call each: as NumPy's matmul computes it. The products reach
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


# MNIST's 784 inputs: the forward product's k is above one OpenBLAS block (448 float32, 384
# float64 on SkylakeX), where one thread and two used to round differently (1.5e-8 apart after
# an epoch with SGD, 2.9e-4 with Adam); batch 512 puts the weight gradient's k there too.
# core/blas.py cuts such products into pieces of at most K_BLOCK.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch", [128, 512])
def test_same_weights_whatever_the_threads_with_mnists_784_inputs(two_threads, look_every_time, optimizer, dtype, batch):
    sizes = [784, 256, 10]
    runs = {}
    for label, setting, load in (("1", 1, None), ("2", 2, None), ("auto", None, None),
                                 ("auto, load changing at every product", None, FakeLoad(2.0, 0.0))):
        with threads.configured(setting, load):
            runs[label] = train(sizes, optimizer, dtype, rows=3072, batch=batch, epochs=2)
    for label, weights in runs.items():
        for a, b in zip(runs["1"], weights):
            assert np.array_equal(a, b), f"{label} threads changed the weights ({np.abs(a - b).max():.3g})"
    assert not np.array_equal(runs["1"][0], untrained(sizes, dtype).weights[0])


def product_cases(k: int, dtype, n: int = 296):
    """The four products of training with inner dimension ``k``, each large enough for OpenBLAS
    to split between threads: (out, left, right, alpha, beta) for gemm_into. (``n`` a multiple
    of 8: see test_float64_products_with_ragged_columns_run_on_one_thread.)"""
    rng = np.random.default_rng(k)
    X, W = rng.standard_normal((512, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    delta, W_next = rng.standard_normal((512, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    A, D = rng.standard_normal((k, 400)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    C = rng.standard_normal((400, n)).astype(dtype)
    return {"forward X·W": (np.empty((512, n), dtype), X, W, 1.0, 0),
            "backward δ·Wᵀ": (np.empty((512, n), dtype), delta, W_next.T, 1.0, 0),
            "gradient Aᵀ·δ": (np.empty((400, n), dtype), A.T, D, 1.0, 0),
            "update W − Aᵀ·δ": (C, A.T, D, -1.0, 1)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [K_BLOCK + 1, 449, 784, 2000])
def test_a_long_product_is_the_same_on_one_and_two_threads(dtype, k):
    for name, (out, left, right, alpha, beta) in product_cases(k, dtype).items():
        results = []
        for count in (1, 2):
            with threadpool_limits(limits=count, user_api="blas"):
                results.append(gemm_into(out.copy(), left, right, alpha, beta))
        assert np.array_equal(*results), f"{name}, k = {k}: {np.abs(results[0] - results[1]).max():.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [64, K_BLOCK])
def test_a_product_within_one_block_is_plain_matmul_on_any_thread_count(dtype, k):
    for name, (out, left, right, alpha, beta) in product_cases(k, dtype).items():
        for count in (1, 2):
            with threadpool_limits(limits=count, user_api="blas"):
                expected = out - left @ right if beta else np.matmul(left, right)
                assert np.array_equal(gemm_into(out.copy(), left, right, alpha, beta), expected), f"{name}, {count} threads"


def test_float64_products_with_ragged_columns_run_on_one_thread(two_threads):
    """OpenBLAS's threads share a product's columns; for float64 a share ending inside a block
    of 8 columns rounds differently (core/blas.py), so such products get one thread even when
    the user asked for two — the price of the same bits, paid by few layers."""
    assert exact_on_any_threads(np.dtype(np.float64), 296) and exact_on_any_threads(np.dtype(np.float32), 300)
    assert not exact_on_any_threads(np.dtype(np.float64), 300) and not exact_on_any_threads(np.dtype(np.float64), 10)
    assert threads.threads_for(512, 256, 300, setting=2, default=2, exact=False) == 1
    with threads.configured(2):
        threads.for_product(512, 256, 300, np.dtype(np.float64))
        assert blas_threads() == 1
        threads.for_product(512, 256, 300, np.dtype(np.float32))
        assert blas_threads() == 2
        threads.for_product(512, 256, 296, np.dtype(np.float64))
        assert blas_threads() == 2


# --- the command line -----------------------------------------------------------------------------
def run_train(config, *args, env=None):
    return runner.invoke(app, ["train", str(config), "-o", str(config.parent / "m.npz"), "--force", "--quiet", *args], env=env)


@pytest.fixture
def counts_during_run(monkeypatch):
    """The BLAS thread count right after each product's choice, while a command runs."""
    seen = []
    choose = threads.for_product

    def recording(m, k, n, dtype=None):
        choose(m, k, n, dtype)
        seen.append(blas_threads())

    monkeypatch.setattr(threads, "for_product", recording)
    return seen


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["--threads", "1"], {}, {1}),
    ([], {"NNCLI_THREADS": "1"}, {1}),
    # The option wins; the tiny float64 network's products with 3 output columns still get one
    # thread (test_float64_products_with_ragged_columns_run_on_one_thread), its others two.
    (["--threads", "2"], {"NNCLI_THREADS": "1"}, {1, 2}),
    (["--threads", "2"], {"NNCLI_THREADS": "many"}, {1, 2}),  # and the variable is not even read
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
    assert counts_during_run and set(counts_during_run) == {1, 2}  # 3 float64 output columns: one
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
    assert "--threads" in result.output and "expected a whole number of threads from 1 to 1024, or auto" in result.output


def test_threads_auto_on_the_command_line_overrides_the_variable(tiny_config):
    """`NNCLI_THREADS=1 nncli train … --threads auto`: back to the automatic choice."""
    result = run_train(tiny_config, "--threads", "auto", env={"NNCLI_THREADS": "1"})
    assert result.exit_code == 0, result.output


def test_the_installed_program_refuses_a_bad_nncli_threads(tiny_config):
    env = {"PATH": str(NNCLI.parent), "NNCLI_THREADS": "lots"}
    result = subprocess.run([str(NNCLI), "train", str(tiny_config), "-o", str(tiny_config.parent / "m.npz")], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr == ("nncli: error: environment variable NNCLI_THREADS='lots': expected a whole number of "
                             "threads from 1 to 1024, or auto\n")
    assert result.stdout == ""
