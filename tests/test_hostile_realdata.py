"""An attack on real data (issue 12): categories, missing cells, Parquet, `nncli init`, resume.

Every case runs the installed `nncli` as a real process and checks a promise: one
`nncli: error: …` line naming the file, the place and what is expected, a documented exit code,
no traceback; budgets checked before memory is spent; resume bit-exact. The tests that fail
name a bug in their docstring (what happens now, what should).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess

import numpy as np
import pytest

from tests.test_subprocess import NNCLI


def nncli(*args, cwd=None, input=None, env=None, timeout=120):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(NNCLI), *map(str, args)], capture_output=True, text=True, cwd=cwd, input=input,
                          env=full_env, timeout=timeout)


def one_line(result, code, *fragments):
    """Exactly one `nncli: error:` line (warnings aside), the exit code, and each fragment in it."""
    lines = [line for line in result.stderr.splitlines() if not line.startswith("nncli: warning:")]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith("nncli: error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def config(folder, name="c.yaml", **data):
    """A small classification config for `d.csv` (or data['train']) in ``folder``."""
    section = {"train": "d.csv", "target": "y", **data}
    text = {"seed": 1, "data": section, "model": {"layers": ["auto", 4, "auto"]},
            "training": {"loss": "cross_entropy", "epochs": 2, "batch_size": 16}, "output": "m.npz"}
    path = folder / name
    path.write_text(json.dumps(text))
    return path


def mixed_rows(n, seed=0, colours=("red", "green", "blue")):
    """Rows of a mixed table: a number with gaps, a category with gaps, a label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        age = rng.choice([str(rng.randint(18, 90)), str(rng.randint(18, 90)), "", " NA "])
        colour = rng.choice([*colours, " NA ", ""])
        rows.append(f"{i},{age},{colour},{rng.random():.4f},{rng.choice('pq')}")
    return rows


HEADER = "id,age,colour,score,y"


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    """A model trained with a categorical column and missing: mean (fills stored)."""
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "d.csv").write_text("\n".join([HEADER, *mixed_rows(400)]) + "\n")
    one = nncli("train", config(folder, drop=["id"], missing="mean"), "--quiet")
    assert one.returncode == 0, one.stderr
    return folder / "m.npz"


def edited(model, target, edit):
    with np.load(model, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("meta")))
    edit(meta, arrays)
    np.savez(target, meta=np.array(json.dumps(meta)), **arrays)
    return target


# --- bugs: each of these fails today -------------------------------------------------------------
@pytest.mark.parametrize("word", ["1_000", "\uff15"])  # Python's float() reads both; nncli's parsers do not
def test_a_numeric_column_with_a_cell_only_python_reads_as_a_number_is_one_line(tmp_path, word):
    """BUG: a numeric column of more than data.max_categories values with one cell such as
    `1_000` (or a full-width digit) is read as categorical (the parsers refuse the cell as a
    number), and the advice for such a column (selection.categories_of) looks for a value
    Python's float() refuses: there is none, `words[0]` raises IndexError and train prints a
    traceback, exit 1. Expected: the one-line max_categories error naming the column and the cell."""
    rows = [f"{(i % 120) * 0.37:.2f},{i % 2}" for i in range(300)]
    rows[50] = f"{word},0"
    (tmp_path / "d.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    result = nncli("train", config(tmp_path), "--quiet")
    one_line(result, 2, "d.csv", "'x'", "max_categories")


def test_a_parquet_cell_larger_than_the_csv_line_budget_is_refused_before_it_is_decoded(tmp_path):
    """BUG: the CSV readers refuse a line over 8 MiB (NNCLI_MAX_LINE_BYTES) before reading it; a
    Parquet file has no such budget. A 2 KB file whose one cell decodes to 24 MiB (zstd) is
    decoded whole, even in a column the config drops (train peaks at ~225 MB for it; a 14 KB
    file with a 400 MiB cell took 3.0 GB, so a few MB of Parquet exhaust any machine, and the
    footer-based check only compares the declared size with *all* available memory).
    Expected: refused from the footer's sizes, in one line naming the file (exit 2), as the
    same table in CSV is."""
    import polars as pl

    big = "a" * (24 << 20)
    rows = 20
    frame = pl.DataFrame({"x": [float(i) for i in range(rows)], "note": ["short"] * (rows - 1) + [big],
                          "y": ["p" if i % 2 else "q" for i in range(rows)]})
    frame.write_parquet(tmp_path / "d.parquet", compression="zstd")
    assert (tmp_path / "d.parquet").stat().st_size < 100_000
    with open(tmp_path / "d.csv", "w") as f:
        f.write("x,note,y\n" + "".join(f"{i}.0,{'short' if i < rows - 1 else big},{'p' if i % 2 else 'q'}\n" for i in range(rows)))
    del big, frame
    csv = nncli("train", config(tmp_path, "csv.yaml", drop=["note"]), "--quiet")
    one_line(csv, 2, "d.csv:21", "8 MiB")  # the CSV of the same table: refused (this holds)
    parquet = nncli("train", config(tmp_path, "pq.yaml", train="d.parquet", drop=["note"]), "--quiet")
    one_line(parquet, 2, "d.parquet")


def test_a_model_file_with_more_missing_value_tokens_than_a_config_may_list_is_refused(mixed_model, tmp_path):
    """BUG: a config may list at most 100 missing-value tokens of at most 100 characters
    (budgets.MAX_MISSING_TOKENS, MAX_TOKEN_CHARS), so train never writes more; the model
    reader takes any number. predict hands them to both parsers for every block: with 10^6
    tokens, a 34 MB CSV took 452 s instead of 3.8 s (and 3x the memory). Expected: the file
    refused at load, one line naming it and `missing_values`, exit 2, as every other size a
    model file declares is checked against what nncli writes."""

    def edit(meta, arrays):
        meta["encoding"]["missing_values"] += [f"token{i}" for i in range(100_000)]

    model = edited(mixed_model, tmp_path / "tokens.npz", edit)
    (tmp_path / "p.csv").write_text("\n".join([HEADER, *mixed_rows(20, seed=5)]) + "\n")
    one_line(nncli("predict", model, tmp_path / "p.csv"), 2, "tokens.npz", "missing_values")


def test_a_fill_value_the_model_cannot_hold_is_blamed_on_the_model_not_on_a_nan_in_the_csv(mixed_model, tmp_path):
    """BUG: a model file whose stored fill for `age` is 1e308 (finite, so accepted) makes
    predict say `p.csv:N: column 'age': nan is too large for this float32 model (after
    normalisation)`: the cell is empty, `nan` is not in the file, and the value at fault is the
    model's. Expected: one line naming the model file and its fill value (exit 2), not a NaN
    the user never wrote."""

    def edit(meta, arrays):
        meta["encoding"]["columns"][0]["fill"] = 1e308

    model = edited(mixed_model, tmp_path / "fill.npz", edit)
    (tmp_path / "p.csv").write_text(f"{HEADER}\n1,,red,0.5,p\n")
    line = one_line(nncli("predict", model, tmp_path / "p.csv"), 2, "fill.npz")
    assert "nan" not in line.lower().replace("nncli", ""), line


def test_resuming_after_the_data_gained_a_category_says_the_data_changed(tmp_path):
    """BUG: `train --resume` checks the data files' hashes only after reading the data with the
    checkpoint's resolved layer sizes. When the training file gained a category since the
    checkpoint, the error is `m.ckpt.npz: model.layers.0: declares 3 inputs but d.csv … make 4
    inputs …; use 'auto' or the right number` — but the config says auto, and the advice cannot
    be followed. Expected: the documented `d.csv has changed since the checkpoint` line."""
    rng = random.Random(1)
    rows = [f"{rng.random():.3f},{rng.choice(['red', 'blue'])},{rng.choice('pq')}" for _ in range(200)]
    (tmp_path / "d.csv").write_text("a,c,y\n" + "\n".join(rows) + "\n")
    path = config(tmp_path)
    settings = json.loads(path.read_text())
    settings["training"]["checkpoint_every"] = 1
    path.write_text(json.dumps(settings))
    assert nncli("train", path, "--quiet").returncode == 0
    text = (tmp_path / "d.csv").read_text().splitlines()
    text[1] = text[1].replace("red", "green").replace("blue", "green")
    (tmp_path / "d.csv").write_text("\n".join(text) + "\n")
    result = nncli("train", "--resume", tmp_path / "m.ckpt.npz", "--set", "training.epochs=3", "--force", "--quiet")
    one_line(result, 2, "has changed since the checkpoint")


def test_init_counts_categories_without_their_surrounding_spaces_as_train_does(tmp_path):
    """BUG: train takes a category without its surrounding spaces (`red`, ` red` and `red ` are
    one category: config.md); `nncli init` counts the raw cells, so a column of 60 categories
    written with stray spaces is "free text: more than 100 distinct values" and dropped —
    here it is the only feature, so init refuses the file ("no column is left"), though
    `nncli train` trains on it with 60 one-hot inputs. Expected: init guesses it categorical
    (60 values) and the config it writes trains."""
    rng = random.Random(2)
    rows = []
    for i in range(400):
        value = f"v{rng.randrange(60)}"
        rows.append(f"{rng.choice([value, ' ' + value, value + ' '])},{i % 2}")
    (tmp_path / "d.csv").write_text("c,y\n" + "\n".join(rows) + "\n")
    trained = nncli("train", config(tmp_path, "plain.yaml"), "--quiet")  # train takes it as it is
    assert trained.returncode == 0, trained.stderr
    made = nncli("init", "d.csv", "--target", "y", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "categorical" in (tmp_path / "d.yaml").read_text()
    assert nncli("train", "d.yaml", "--quiet", cwd=tmp_path).returncode == 0


def test_drop_rows_that_leaves_out_every_row_of_a_class_says_so(tmp_path):
    """BUG (silent loss): with data.missing: drop_rows, when every row of class `r` has a missing
    feature, the model is trained on the two other classes and the only message is the usual
    count (`drop_rows left out 20 rows …`); `evaluate` later says `label 'r' does not occur in
    the training data`, though the training file is full of it. Expected: the run names the
    class it lost (a warning or an error naming 'r')."""
    rng = random.Random(3)
    rows = [f"{'' if i % 3 == 0 else f'{rng.random():.3f}'},{'rpq'[i % 3]}" for i in range(60)]
    (tmp_path / "d.csv").write_text("a,y\n" + "\n".join(rows) + "\n")
    result = nncli("train", config(tmp_path, missing="drop_rows"), "--quiet")
    assert "'r'" in result.stderr, result.stderr


def _reference_and_data(tmp_path, rows_of_c=("u", "v"), dash_every=0):
    rng = random.Random(6)
    (tmp_path / "ref.csv").write_text("a,c,y\n" + "".join(f"{rng.random():.3f},{rng.choice(['u', 'v'])},{rng.choice('pq')}\n"
                                                          for _ in range(100)))
    reference = config(tmp_path, "ref.yaml", train="ref.csv", missing="mean")
    settings = json.loads(reference.read_text())
    settings["output"] = "ref.npz"
    reference.write_text(json.dumps(settings))
    assert nncli("train", reference, "--quiet").returncode == 0
    cells = [("-" if dash_every and i % dash_every == 0 else f"{rng.random():.3f}", rng.choice(rows_of_c)) for i in range(100)]
    (tmp_path / "d.csv").write_text("a,c,y\n" + "".join(f"{a},{c},{rng.choice('pq')}\n" for a, c in cells))


def _warm_start(tmp_path, **data):
    path = config(tmp_path, "warm.yaml", **data)
    settings = json.loads(path.read_text())
    settings["model"]["init_from"] = "ref.npz"
    path.write_text(json.dumps(settings))
    return nncli("train", path, "--quiet")


def test_a_warm_started_model_reads_its_own_training_file_with_the_tokens_it_was_trained_with(tmp_path):
    """BUG: with model.init_from, train reads the data with the config's data.missing_values
    (here `-` is one) but the model file stores the reference model's tokens; the new model
    then refuses its own training file: `nncli evaluate m.npz d.csv` says `d.csv:2: column 'a':
    '-' is not a number`. Expected: predict and evaluate read as training read (the model stores
    the tokens the run used), so evaluating on the training file works."""
    _reference_and_data(tmp_path, dash_every=10)
    trained = _warm_start(tmp_path, missing="mean", missing_values=["", "NA", "-"])
    assert trained.returncode == 0, trained.stderr
    evaluated = nncli("evaluate", tmp_path / "m.npz", tmp_path / "d.csv")
    assert evaluated.returncode == 0, evaluated.stderr


def test_a_warm_start_follows_the_configs_unknown_category_or_says_why_not(tmp_path):
    """BUG: with model.init_from, an unseen category in the training file is refused with the
    advice `set data.unknown_category: ignore …` — while the config already says ignore: the
    reference model's policy is applied (dataset.py: plan.unknown_category), the config's is
    silently not. config.md lists what init_from takes from the reference (features,
    categories, fills, normalisation); the policy is not among them. Expected: the config's
    `ignore` applies (the unseen value gets all-zero inputs) and training runs."""
    _reference_and_data(tmp_path, rows_of_c=("u", "v", "w"))
    trained = _warm_start(tmp_path, unknown_category="ignore")
    assert "set data.unknown_category: ignore" not in trained.stderr, trained.stderr
    assert trained.returncode == 0, trained.stderr


@pytest.mark.parametrize("content", [b"PAR1PAR1", b"PAR1\x00\x00PAR1"])
def test_a_parquet_file_too_short_to_hold_a_footer_is_not_said_to_lack_the_signature_it_has(tmp_path, content):
    """BUG (message): a file of 8-11 bytes that starts with PAR1 is refused with "not a Parquet
    file (it does not start with the Parquet signature PAR1)" — it does start with it.
    Expected: the one line says what is wrong (too short to hold a footer: cut short?)."""
    (tmp_path / "d.parquet").write_bytes(content)
    line = one_line(nncli("train", config(tmp_path, train="d.parquet"), "--quiet"), 2, "d.parquet")
    assert "does not start with" not in line, line


# --- promises that hold: guards for the new rules ------------------------------------------------
def test_an_unknown_category_deep_in_a_streamed_file_and_on_stdin_names_its_line(mixed_model, tmp_path):
    """Past several 2 MiB chunks, the same line and value from a file and from stdin; -o leaves nothing."""
    rows = mixed_rows(90_000, seed=9)
    rows[80_000] = "80000,33,purple,0.5,p"  # line 80,002
    text = "\n".join([HEADER, *rows]) + "\n"
    (tmp_path / "p.csv").write_text(text)
    for source, kwargs in ((tmp_path / "p.csv", {}), ("-", {"input": text})):
        for command in ("predict", "evaluate"):
            result = nncli(command, mixed_model, source, **kwargs)
            name = "p.csv" if source != "-" else "<stdin>"
            one_line(result, 2, f"{name}:80002", "'colour'", "'purple'")
    one_line(nncli("predict", mixed_model, tmp_path / "p.csv", "-o", tmp_path / "out.csv"), 2, "purple")
    assert sorted(os.listdir(tmp_path)) == ["p.csv"]


def test_spaced_missing_tokens_are_missing_in_numbers_and_categories_from_file_stdin_and_parquet(mixed_model, tmp_path):
    import polars as pl

    text = f"{HEADER}\n1, NA ,red,0.5,p\n2,40, NA ,0.1,q\n3,,,0.2,p\n4,50,blue,0.3,q\n"
    (tmp_path / "p.csv").write_text(text)
    pl.read_csv(tmp_path / "p.csv", infer_schema_length=0).write_parquet(tmp_path / "p.parquet")
    outputs = [nncli("predict", mixed_model, tmp_path / "p.csv", "--proba"), nncli("predict", mixed_model, "-", "--proba", input=text),
               nncli("predict", mixed_model, tmp_path / "p.parquet", "--proba")]
    assert all(result.returncode == 0 for result in outputs), [result.stderr for result in outputs]
    assert len({result.stdout for result in outputs}) == 1
    assert outputs[0].stdout.count("\n") == 5


def test_an_all_missing_column_is_refused_by_train_and_filled_by_predict(mixed_model, tmp_path):
    rows = [f"{i},,{'red' if i % 2 else 'blue'},{i / 10},{'pq'[i % 2]}" for i in range(40)]
    (tmp_path / "d.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    one_line(nncli("train", config(tmp_path, drop=["id"], missing="mean"), "--quiet"), 2,
             "d.csv", "'age'", "every value is missing", "data.drop")
    predicted = nncli("predict", mixed_model, tmp_path / "d.csv")
    assert predicted.returncode == 0 and predicted.stdout.count("\n") == 41, predicted.stderr


def test_category_explosion_is_one_line_within_bounded_memory(tmp_path):
    """200,000 distinct text values in a feature: refused as an ID, quickly and in one line."""
    with open(tmp_path / "d.csv", "w") as f:
        f.write("code,x,y\n" + "".join(f"k{i:07d},{i % 13},{'pq'[i % 2]}\n" for i in range(200_000)))
    result = nncli("train", config(tmp_path), "--quiet")
    one_line(result, 2, "'code'", "200,000 distinct values", "looks like an ID", "data.drop")


@pytest.mark.parametrize("kind", ["list", "struct", "binary", "date"])
def test_parquet_columns_of_types_nncli_cannot_read_are_one_line(tmp_path, kind):
    import datetime

    import polars as pl

    n = 30
    values = {"list": pl.Series("w", [[i, i] for i in range(n)]),
              "struct": pl.Series("w", [{"p": i, "q": 1.5} for i in range(n)]),
              "binary": pl.Series("w", [b"\x00\x01"] * n),
              "date": pl.Series("w", [datetime.date(2020, 1, 1 + i % 28) for i in range(n)])}[kind]
    pl.DataFrame({"x": [float(i) for i in range(n)], "w": values, "y": ["pq"[i % 2] for i in range(n)]}).write_parquet(tmp_path / "d.parquet")
    one_line(nncli("train", config(tmp_path, train="d.parquet"), "--quiet"), 2, "d.parquet", "'w'")


def test_nulls_in_parquet_labels_are_a_missing_target_with_its_row(tmp_path):
    import polars as pl

    labels = ["pq"[i % 2] for i in range(30)]
    labels[7] = None
    pl.DataFrame({"x": [float(i) for i in range(30)], "y": labels}).write_parquet(tmp_path / "d.parquet")
    one_line(nncli("train", config(tmp_path, train="d.parquet", missing="mean"), "--quiet"), 2,
             "d.parquet: row 8", "'y'", "missing target")


def test_a_column_numeric_for_10000_rows_then_text_is_categorical_in_memory_and_refused_from_disk(tmp_path):
    rng = random.Random(4)
    with open(tmp_path / "d.csv", "w") as f:
        f.write("a,b,y\n" + "".join(f"{rng.random():.4f},{'abc' if i == 12_000 else i % 5},{'pq'[i % 2]}\n" for i in range(20_000)))
    assert nncli("train", config(tmp_path, "auto.yaml", in_memory="auto"), "--quiet").returncode == 0
    inspected = nncli("inspect", tmp_path / "m.npz")
    assert "categorical (6)" in inspected.stdout, inspected.stdout
    one_line(nncli("train", config(tmp_path, "disk.yaml", in_memory=False, cache=str(tmp_path / "cache")), "--quiet", "--force"),
             2, "data.in_memory", "d.csv:12002", "'abc'")


def test_init_on_hostile_column_names_writes_a_config_that_trains(tmp_path):
    import csv

    names = ["a: b", "#x", "- y", "\x1b[31mred", "yes", "1e3", "{x}", "*anchor", "&ref", "!tag", "%pct", "@at", "'q'", '"dq"',
             "tab\tx", "null", "~", "u\u2028v"]
    rng = random.Random(5)
    with open(tmp_path / "d.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*names, "tar: get"])
        for _ in range(60):
            row = [f"{rng.random():.3f}" for _ in names]
            row[1] = rng.choice(["x\x1b[2J", "y: z", "#c"])
            writer.writerow([*row, rng.choice(["A: 1", "\x1b[31mB", "- C"])])
    made = nncli("init", "d.csv", "--target", "tar: get", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "\x1b" not in made.stdout and "\x1b" not in (tmp_path / "d.yaml").read_text()
    trained = nncli("train", "d.yaml", "--quiet", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    shown = nncli("evaluate", tmp_path / "runs" / "d.npz", tmp_path / "d.csv")
    assert shown.returncode == 0 and "\x1b" not in shown.stdout, shown.stderr


def test_escapes_in_an_unknown_category_and_in_the_models_categories_are_shown_escaped(mixed_model, tmp_path):
    def edit(meta, arrays):
        meta["encoding"]["columns"][1]["categories"] = ["\x1b[31mblue", "green\x07", "red"]

    model = edited(mixed_model, tmp_path / "esc.npz", edit)
    (tmp_path / "p.csv").write_text(f"{HEADER}\n1,30,\x1b]0;title\x07,0.5,p\n")
    line = one_line(nncli("predict", model, tmp_path / "p.csv"), 2, "unknown category")
    assert "\x1b" not in line and "\x07" not in line, line
    inspected = nncli("inspect", model)
    assert inspected.returncode == 0 and "\x1b" not in inspected.stdout


@pytest.mark.parametrize("edit, fragment", [
    (lambda e: e["columns"][1]["categories"].append("zzz"), "inputs"),  # categories count != layer width
    (lambda e: e["columns"][1].update(categories=["red", "red", "blue"]), "repeats a category"),
    (lambda e: e["columns"][1].update(fill=3), "index of one of its categories"),
    (lambda e: e["columns"][1].update(fill=0.5), "index of one of its categories"),
    (lambda e: e.update(missing_values=[1, 2]), "missing_values"),
    (lambda e: e["columns"][0].update(fill="3"), "fill"),
    (lambda e: e.update(columns={}), "columns"),
])
def test_an_encoding_that_lies_is_one_model_file_line(mixed_model, tmp_path, edit, fragment):
    model = edited(mixed_model, tmp_path / "lie.npz", lambda meta, arrays: edit(meta["encoding"]))
    (tmp_path / "p.csv").write_text(f"{HEADER}\n1,30,red,0.5,p\n")
    for command in ("predict", "evaluate", "inspect"):
        args = [command, model] + ([tmp_path / "p.csv"] if command != "inspect" else [])
        one_line(nncli(*args), 2, "lie.npz", "encoding", fragment)


def test_resume_after_sigint_with_categories_and_mean_fills_is_bit_exact(tmp_path):
    (tmp_path / "d.csv").write_text("\n".join([HEADER, *mixed_rows(1500, seed=11)]) + "\n")
    path = config(tmp_path, drop=["id"], missing="mean")
    settings = json.loads(path.read_text())
    settings["training"].update(epochs=30, batch_size=8)
    settings["model"]["layers"] = ["auto", 32, "auto"]
    path.write_text(json.dumps(settings))
    whole = nncli("train", path, "--quiet", "-o", tmp_path / "whole.npz", timeout=300)
    assert whole.returncode == 0, whole.stderr
    process = subprocess.Popen([str(NNCLI), "train", str(path), "--log-every", "1", "-o", str(tmp_path / "cut.npz")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    started = False
    for line in process.stdout:  # the third epoch's row (after the table's header): well inside the run
        started = started or "train loss" in line
        if started and line.split()[:1] in (["3"], ["3*"]):
            break
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    resumed = nncli("train", "--resume", tmp_path / "cut.ckpt.npz", "--quiet", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with np.load(tmp_path / "whole.npz") as a, np.load(tmp_path / "cut.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            if name != "meta":
                assert np.array_equal(a[name], b[name]), name
        meta_a, meta_b = json.loads(str(a["meta"])), json.loads(str(b["meta"]))
    assert meta_a["encoding"] == meta_b["encoding"] and meta_a["feature_scaler"] == meta_b["feature_scaler"]


def test_a_model_whose_categories_use_a_missing_token_never_matches_it_but_is_one_line(mixed_model, tmp_path):
    """A category equal to a missing-value token can never be seen (the cell is missing first):
    the message lists the model's categories, escaped, with the value that was unknown."""

    def edit(meta, arrays):
        meta["encoding"]["columns"][1]["categories"] = ["", "NA", "red"]

    model = edited(mixed_model, tmp_path / "tok.npz", edit)
    (tmp_path / "p.csv").write_text(f"{HEADER}\n1,30,blue,0.5,p\n")
    one_line(nncli("predict", model, tmp_path / "p.csv"), 2, "p.csv:2", "'blue'")


def test_concurrent_trains_of_one_output_one_refused(tmp_path):
    (tmp_path / "d.csv").write_text("\n".join([HEADER, *mixed_rows(3000, seed=12)]) + "\n")
    path = config(tmp_path, drop=["id"], missing="median")
    settings = json.loads(path.read_text())
    settings["training"].update(epochs=200, batch_size=8)
    path.write_text(json.dumps(settings))
    first = subprocess.Popen([str(NNCLI), "train", str(path), "--log-every", "1", "--force"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in first.stdout:  # training has begun (the table's header): the lock is held
        if "train loss" in line:
            break
    (tmp_path / "link").symlink_to(tmp_path)
    second = nncli("train", tmp_path / "link" / "c.yaml", "--force", "--quiet")
    first.terminate()
    first.communicate(timeout=120)
    one_line(second, 2, "another nncli process")
    assert not (tmp_path / "m.npz").exists() or first.returncode == 0
