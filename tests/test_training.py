"""The trainer: early stopping, schedules, class weights, dropout, binary cross-entropy, and
bit-exact resumption from a checkpoint taken anywhere, even inside an epoch."""

import json

import numpy as np
import pytest

from nncli.commands.plot import matplotlib_available
from nncli.commands.session import TrainRequest, open_session
from nncli.commands.train import prepare_training
from nncli.config import load_config
from nncli.core.trainer import Reporter
from nncli.errors import ConfigError, InterruptedRun
from nncli.files.checkpoint import load_checkpoint
from nncli.files.model import load_model
from tests.conftest import CONFIGS, DATASETS

# A run folder's files (curves.png is drawn when matplotlib, the plot extra, is installed).
RUN_FOLDER_FILES = sorted(["config.yaml", "history.csv", "metrics.json", "model.npz"] + ["curves.png"] * matplotlib_available())


def _run(path, *overrides):
    return prepare_training(load_config(path, list(overrides)))


class StopAt(Reporter):
    """Asks the trainer to stop after a given batch of a given epoch (as Ctrl-C would)."""

    def __init__(self, trainer, epoch, batch):
        self.trainer, self.epoch, self.batch = trainer, epoch, batch

    def on_batch(self, epoch, batch):
        if (epoch, batch) == (self.epoch, self.batch):
            self.trainer.stop_requested = True


def _train_keeping_snapshots(run):
    """Train a run to its end; returns the trainer and each epoch's weights as they ended it."""
    trainer = run.trainer()
    snapshots = {}

    class Keep(Reporter):
        def on_epoch_end(self, record):
            snapshots[record.epoch] = [p.copy() for p in run.network.parameters()]

    trainer.run(Keep())
    return trainer, snapshots


def test_early_stopping_restores_the_best_weights(write):
    rows = "x,y\n" + "".join(f"{i / 10},{(i % 7) / 7}\n" for i in range(60))
    write("noise.csv", rows)
    config = write(
        "c.yaml",
        "seed: 3\ndata: {train: noise.csv}\nmodel: {layers: [auto, 64, auto], activation: tanh}\n"
        "training: {loss: mse, optimizer: adam, learning_rate: 0.05, epochs: 300, batch_size: 8,\n"
        "  early_stopping: {monitor: val_loss, patience: 5}}\n",
    )
    run = _run(config)
    trainer, snapshots = _train_keeping_snapshots(run)
    model = run.model(trainer)
    assert trainer.stopped_early and len(trainer.history) < 300
    val = [r.val_loss for r in trainer.history]
    best = int(np.argmin(val)) + 1
    assert trainer.best_epoch == best == model.metrics["epoch"]
    assert len(trainer.history) == best + 5  # patience 5 epochs without improvement
    assert all(np.array_equal(a, b) for a, b in zip(run.network.parameters(), snapshots[best]))
    assert model.metrics["val_loss"] == min(val)
    assert [r.epoch for r in trainer.history if r.best][-1] == best


def test_early_stopping_at_max_epochs_still_restores(tiny_config):
    run = _run(tiny_config, "training.epochs=6", "training.early_stopping={monitor: val_loss, patience: 100}")
    trainer = run.trainer()
    trainer.run()
    assert not trainer.stopped_early and trainer.best_epoch is not None
    assert run.model(trainer).metrics["epoch"] == trainer.best_epoch



def _last_reset(values, min_delta, minimize):
    """The epoch that last beat the epoch before it by more than min_delta: what early stopping
    used to restore when min_delta decided the best epoch too."""
    reset, reference = 1, values[0]
    for epoch, value in enumerate(values[1:], 2):
        if (value < reference - min_delta) if minimize else (value > reference + min_delta):
            reset, reference = epoch, value
    return reset


@pytest.mark.parametrize("monitor, minimize", [("val_r2", False), ("val_loss", True)])
def test_early_stopping_with_min_delta_restores_the_best_epoch(monitor, minimize):
    run = _run(CONFIGS / "diabetes.yaml", f"training.early_stopping={{monitor: {monitor}, min_delta: 0.05, patience: 5}}")
    trainer, snapshots = _train_keeping_snapshots(run)
    values = [r.to_json(run.metric_name)[monitor] for r in trainer.history]
    best = int(np.argmin(values) if minimize else np.argmax(values)) + 1  # the earliest on a tie
    assert _last_reset(values, 0.05, minimize) != best  # a run where min_delta used to pick another epoch
    assert trainer.stopped_early and len(trainer.history) == _last_reset(values, 0.05, minimize) + 5
    assert trainer.best_epoch == best == run.model(trainer).metrics["epoch"]
    assert all(np.array_equal(a, b) for a, b in zip(run.network.parameters(), snapshots[best]))
    assert [r.epoch for r in trainer.history if r.best][-1] == best


def test_resume_keeps_the_best_epoch_apart_from_the_patience_reference(tmp_path):
    """Interrupted just after an epoch that is the best but did not reset patience (an
    improvement smaller than min_delta): the resumed run stops and restores exactly as the
    straight one."""
    common = ["training.early_stopping={monitor: val_r2, min_delta: 0.05, patience: 5}"]
    straight_run = open_session(TrainRequest(CONFIGS / "diabetes.yaml", common, output=str(tmp_path / "a.npz")))

    class Watch(Reporter):
        def __init__(self):
            self.apart: list[int] = []

        def on_epoch_end(self, record):
            tracker = straight_run.trainer.tracker
            if tracker.best != tracker.reference:
                self.apart.append(record.epoch)

    watch = Watch()
    straight_run.train(watch)
    straight = load_model(tmp_path / "a.npz")
    epoch = next(e for e in watch.apart if e < straight.metrics["epoch"])  # the case must occur, or this proves nothing
    first = open_session(TrainRequest(CONFIGS / "diabetes.yaml", common, output=str(tmp_path / "b.npz")))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, epoch + 1, 2))
    tracker = first.trainer.tracker
    assert tracker.best != tracker.reference and first.trainer.best_epoch == epoch
    open_session(TrainRequest(resume=tmp_path / "b.ckpt.npz")).train()
    resumed = load_model(tmp_path / "b.npz")
    assert resumed.metrics["epoch"] == straight.metrics["epoch"]
    assert all(x.tobytes() == y.tobytes() for x, y in zip(straight.network.parameters(), resumed.network.parameters()))

@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["training.optimizer={name: adam}", "training.learning_rate=0.001", "model.dropout=0.2", "training.clip_norm=1.0"],
        ["training.optimizer={name: sgd, momentum: 0.9, nesterov: true}", "training.schedule={name: reduce_on_plateau, patience: 0}",
         "training.early_stopping={patience: 50}", "training.class_weights=balanced", "training.weight_decay=0.001"],
        ["training.optimizer=rmsprop", "training.learning_rate=0.001", "training.schedule=cosine", "training.warmup_epochs=2"],
    ],
    ids=["sgd", "adam-dropout-clip", "momentum-plateau-early-weights", "rmsprop-cosine-warmup"],
)
def test_resume_from_inside_an_epoch_is_bit_exact(tmp_path, overrides):
    """Interrupt in epoch 3 at batch 17 of 45, resume from the checkpoint: identical arrays."""
    common = ["training.epochs=5", *overrides]
    straight = open_session(TrainRequest(CONFIGS / "digits.yaml", common, output=str(tmp_path / "a.npz")))
    straight.train()

    first = open_session(TrainRequest(CONFIGS / "digits.yaml", common, output=str(tmp_path / "b.npz")))
    with pytest.raises(InterruptedRun, match=r"stopped in epoch 3 \(batch 17 of 45\); checkpoint saved to .*b\.ckpt\.npz"):
        first.train(StopAt(first.trainer, 3, 17))
    assert not (tmp_path / "b.npz").exists()
    resumed = open_session(TrainRequest(resume=tmp_path / "b.ckpt.npz"))
    assert (resumed.trainer.epoch, resumed.trainer.batch) == (3, 17)
    resumed.train()

    a, b = load_model(tmp_path / "a.npz"), load_model(tmp_path / "b.npz")
    for x, y in zip(a.network.parameters(), b.network.parameters()):
        assert x.tobytes() == y.tobytes()
    strip = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert not (tmp_path / "b.ckpt.npz").exists()  # an interrupt's checkpoint goes once the run completes


def test_resume_refuses_a_changed_config_but_extends_epochs(tmp_path):
    request = TrainRequest(CONFIGS / "iris.yaml", ["training.epochs=4", "training.checkpoint_every=2"], output=str(tmp_path / "m.npz"))
    open_session(request).train()
    checkpoint = tmp_path / "m.ckpt.npz"
    assert load_checkpoint(checkpoint).trainer_state["epoch"] == 5  # the final state, for extending
    with pytest.raises(ConfigError, match=r"cannot resume with a different config: training.learning_rate: 0.1 in the checkpoint, 0.2 now"):
        open_session(TrainRequest(resume=checkpoint, overrides=["training.learning_rate=0.2"], force=True))
    for changed in ("model.layers.1=8", "training.loss=mse", "model.dtype=float64"):  # named before data is read
        with pytest.raises(ConfigError, match=f"cannot resume with a different config: {changed.split('=')[0].rsplit('.', 1)[0] if changed[-1] == '8' else changed.split('=')[0]}"):
            open_session(TrainRequest(resume=checkpoint, overrides=[changed], force=True))
    from nncli.errors import UsageError

    with pytest.raises(UsageError, match="already exists"):
        open_session(TrainRequest(resume=checkpoint, overrides=["training.epochs=6"]))  # the finished run's model
    longer = open_session(TrainRequest(resume=checkpoint, overrides=["training.epochs=6"], force=True))
    model = longer.train().model
    assert [r["epoch"] for r in model.history] == [1, 2, 3, 4, 5, 6]
    straight = open_session(TrainRequest(CONFIGS / "iris.yaml", ["training.epochs=6"], output=str(tmp_path / "s.npz"))).train().model
    assert all(x.tobytes() == y.tobytes() for x, y in zip(model.network.parameters(), straight.network.parameters()))
    with pytest.raises(ConfigError, match="already trained 6 epochs; training.epochs is 3"):
        open_session(TrainRequest(resume=checkpoint, overrides=["training.epochs=3"], force=True))


def test_resume_refuses_changed_data(tmp_path, write):
    data = write("d.csv", "a,b,y\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(40)))
    config = write("c.yaml", "data: {train: d.csv}\ntraining: {epochs: 3, checkpoint_every: 1}\n")
    open_session(TrainRequest(config, output=str(tmp_path / "m.npz"))).train()
    data.write_text(data.read_text() + "99,1,x\n")
    with pytest.raises(ConfigError, match=r"d\.csv has changed since the checkpoint"):
        open_session(TrainRequest(resume=tmp_path / "m.ckpt.npz", overrides=["training.epochs=4"], force=True))


def test_run_files_and_their_contents(tmp_path):
    model = open_session(TrainRequest(CONFIGS / "iris.yaml", ["training.epochs=3"], run_dir=tmp_path / "run")).train().model
    folder = tmp_path / "run"
    assert sorted(p.name for p in folder.iterdir()) == RUN_FOLDER_FILES
    lines = (folder / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss,") and len(lines) == 4
    assert json.loads((folder / "metrics.json").read_text()) == model.metrics
    # The resolved config trains the same network again, bit for bit.
    again = open_session(TrainRequest(folder / "config.yaml", output=str(tmp_path / "again.npz"))).train().model
    assert all(x.tobytes() == y.tobytes() for x, y in zip(model.network.parameters(), again.network.parameters()))


def test_outputs_are_never_overwritten_silently(tmp_path):
    request = TrainRequest(CONFIGS / "xor.yaml", ["training.epochs=2"], output=str(tmp_path / "m.npz"))
    open_session(request).train()
    before = (tmp_path / "m.npz").read_bytes()
    from nncli.errors import UsageError

    with pytest.raises(UsageError, match=r"m\.npz already exists \(and 3 more file\(s\) of that run\); pass --force"):
        open_session(request)
    assert (tmp_path / "m.npz").read_bytes() == before
    request.force = True
    open_session(request).train()


def test_init_from_starts_from_the_models_weights(tmp_path):
    first = open_session(TrainRequest(CONFIGS / "digits.yaml", ["training.epochs=5"], output=str(tmp_path / "a.npz"))).train().model
    tuned = _run(CONFIGS / "digits.yaml", f"model.init_from={tmp_path / 'a.npz'}", "training.epochs=1")
    for mine, theirs in zip(tuned.network.parameters(), first.network.parameters()):
        np.testing.assert_array_equal(mine, theirs)
    assert tuned.data.feature_scaler.offset.tolist() == first.feature_scaler.offset.tolist()
    fresh = _run(CONFIGS / "digits.yaml", "training.epochs=1").fit()
    assert tuned.fit().history[0]["train_loss"] < fresh.history[0]["train_loss"]
    with pytest.raises(ConfigError, match=r"model.init_from: .*a\.npz has layers \[64, 128, 10\]; the config builds \[64, 32, 10\]"):
        _run(CONFIGS / "digits.yaml", f"model.init_from={tmp_path / 'a.npz'}", "model.layers=[auto, 32, auto]")


def test_class_weights(write, tmp_path):
    write("d.csv", "a,y\n" + "".join(f"{i % 5},{'rare' if i % 10 == 0 else 'common'}\n" for i in range(100)))
    config = write("c.yaml", "data: {train: d.csv, validation_split: 0}\ntraining: {epochs: 1}\n")
    run = _run(config, "training.class_weights=balanced")
    weights = run.trainer().plan.sample_weights
    codes = run.data.train_codes
    # balanced: n / (classes × count): 100 / (2 × 90) and 100 / (2 × 10)
    assert weights[codes == run.classes.index("common")][0] == pytest.approx(100 / 180)
    assert weights[codes == run.classes.index("rare")][0] == pytest.approx(100 / 20)
    run = _run(config, "training.class_weights={rare: 3}")
    assert set(np.unique(run.trainer().plan.sample_weights)) == {1.0, 3.0}
    with pytest.raises(ConfigError, match="'fox' is not a class"):
        _run(config, "training.class_weights={fox: 3}").trainer()


def test_binary_cross_entropy_end_to_end(write, tmp_path):
    import csv

    with open(DATASETS / "iris.csv") as f:
        rows = list(csv.reader(f))
    write("two.csv", "\n".join(",".join(r) for r in rows if r[-1] != "setosa") + "\n")
    config = write("c.yaml", "seed: 1\ndata: {train: two.csv}\nmodel: {layers: [auto, 8, auto]}\n"
                   "training: {loss: binary_cross_entropy, optimizer: adam, learning_rate: 0.02, epochs: 60, batch_size: 16}\n")
    run = _run(config)
    assert run.network.sizes == [4, 8, 1] and run.network.activation_names[-1] == "sigmoid"
    model = run.fit()
    assert model.metrics["val_accuracy"] >= 0.9
    probabilities = model.outputs(np.array([[6.0, 2.9, 4.5, 1.5], [7.7, 3.0, 6.1, 2.3]]))
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert [model.classes[i] for i in probabilities.argmax(axis=1)] == ["versicolor", "virginica"]
    from nncli.commands.evaluate import evaluate_csv
    from nncli.files.model import save_model
    from nncli.tabular.source import open_csv

    save_model(tmp_path / "b.npz", model)
    loaded = load_model(tmp_path / "b.npz")
    with open_csv(tmp_path / "two.csv") as stream:
        report = evaluate_csv(loaded, stream)
    assert report.metrics["accuracy"] >= 0.9 and 0 < report.metrics["loss"] < 0.5
    with pytest.raises(ConfigError, match="binary_cross_entropy needs exactly two classes"):
        _run(CONFIGS / "iris.yaml", "training.loss=binary_cross_entropy")


def test_the_schedule_sets_each_epochs_learning_rate(tiny_config):
    run = _run(tiny_config, "training.schedule={name: step, step_size: 2, gamma: 0.5}", "training.learning_rate=0.4", "training.epochs=5")
    trainer = run.trainer()
    trainer.run()
    assert [r.learning_rate for r in trainer.history] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])


def test_per_layer_activations_and_dropout_from_config(tiny_config):
    run = _run(tiny_config, "model.layers=[auto, 6, 5, auto]", "model.activation=[tanh, relu]", "model.dropout=[0.1, 0.0]")
    assert run.network.activation_names == ["tanh", "relu", "softmax"] and run.network.dropout == [0.1, 0.0]
    with pytest.raises(ConfigError, match=r"model.activation: lists 1 value\(s\) but the network has 2 hidden layer\(s\)"):
        _run(tiny_config, "model.layers=[auto, 6, 5, auto]", "model.activation=[tanh]")


def test_resume_from_a_stop_between_epochs_is_bit_exact(tmp_path):
    """A signal during an epoch's validation lands between epochs: the next epoch's order is
    already drawn when the checkpoint is taken, and must not be drawn again on resume."""

    class StopAfterEpoch(Reporter):
        def __init__(self, trainer):
            self.trainer = trainer

        def on_epoch_end(self, record):
            if record.epoch == 2:
                self.trainer.stop_requested = True

    common = ["training.epochs=4"]
    straight = open_session(TrainRequest(CONFIGS / "iris.yaml", common, output=str(tmp_path / "a.npz"))).train().model
    first = open_session(TrainRequest(CONFIGS / "iris.yaml", common, output=str(tmp_path / "b.npz")))
    with pytest.raises(InterruptedRun, match="stopped before epoch 3"):
        first.train(StopAfterEpoch(first.trainer))
    resumed = open_session(TrainRequest(resume=tmp_path / "b.ckpt.npz")).train().model
    assert all(x.tobytes() == y.tobytes() for x, y in zip(straight.network.parameters(), resumed.network.parameters()))


def test_resume_alone_continues_in_the_runs_own_files(tmp_path):
    first = open_session(TrainRequest(CONFIGS / "iris.yaml", ["training.epochs=3"], run_dir=tmp_path / "rd"))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, 2, 3))
    open_session(TrainRequest(resume=tmp_path / "rd" / "checkpoint.npz")).train()
    assert sorted(p.name for p in (tmp_path / "rd").iterdir()) == RUN_FOLDER_FILES


def test_resume_with_a_seedless_config_uses_the_checkpoints_seed(tmp_path, write):
    config = write("c.yaml", (CONFIGS / "iris.yaml").read_text().replace("seed: 0\n", "").replace("../datasets", str(DATASETS)))
    first = open_session(TrainRequest(config, ["training.epochs=3"], output=str(tmp_path / "m.npz")))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, 2, 1))
    model = open_session(TrainRequest(config, ["training.epochs=3"], resume=tmp_path / "m.ckpt.npz")).train().model
    assert model.config["seed"] == first.run.seed


def test_a_begun_epoch_cannot_be_cut_off_by_fewer_epochs(tmp_path):
    first = open_session(TrainRequest(CONFIGS / "iris.yaml", ["training.epochs=5"], output=str(tmp_path / "m.npz")))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, 3, 2))
    with pytest.raises(ConfigError, match="already trained 3 epochs; training.epochs is 2"):
        open_session(TrainRequest(resume=tmp_path / "m.ckpt.npz", overrides=["training.epochs=2"]))


def test_data_is_hashed_when_read_not_at_the_first_checkpoint(tmp_path, write):
    data = write("d.csv", "a,b,y\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(40)))
    config = write("c.yaml", "data: {train: d.csv}\ntraining: {epochs: 3}\n")
    session = open_session(TrainRequest(config, output=str(tmp_path / "m.npz")))
    data.write_text(data.read_text().replace("0,0,x", "0,0,y", 1))  # edited while training runs

    class Stop(Reporter):
        def on_epoch_end(self, record):
            session.trainer.stop_requested = True

    with pytest.raises(InterruptedRun):
        session.train(Stop())
    with pytest.raises(ConfigError, match="has changed since the checkpoint"):
        open_session(TrainRequest(resume=tmp_path / "m.ckpt.npz"))


def test_edited_checkpoints_are_refused(tmp_path):
    import io
    import zipfile

    first = open_session(TrainRequest(CONFIGS / "iris.yaml", ["training.epochs=3"], output=str(tmp_path / "m.npz")))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, 2, 3))
    original = tmp_path / "m.ckpt.npz"

    def edited(change, name="e.ckpt.npz"):
        target = tmp_path / name
        with zipfile.ZipFile(original) as zin, zipfile.ZipFile(target, "w") as zout:
            for info in zin.infolist():
                data = zin.read(info)
                if info.filename == "meta.npy":
                    meta = json.loads(str(np.lib.format.read_array(io.BytesIO(data))))
                    change(meta)
                    buffer = io.BytesIO()
                    np.lib.format.write_array(buffer, np.array(json.dumps(meta)))
                    data = buffer.getvalue()
                zout.writestr(info.filename, data)
        return target

    from nncli.errors import ModelFileError
    from nncli.files.checkpoint import config_hash

    cases = {
        "recorded hash": lambda m: m["config"]["training"].update(learning_rate=0.5),
        "epoch": lambda m: (m["trainer"].update(epoch=-5), m.update(config_sha256=config_hash(m["config"]))),
        "batch": lambda m: m["trainer"].update(batch=999),
        "history rows": lambda m: m["trainer"].update(history=m["trainer"]["history"][:0]),
        "optimizer": lambda m: m["trainer"]["optimizer"].update(name="adam"),
    }
    for label, change in cases.items():
        with pytest.raises((ModelFileError, ConfigError)):
            open_session(TrainRequest(resume=edited(change, f"{label.replace(' ', '_')}.ckpt.npz"), output=str(tmp_path / f"{label}.npz")))


def test_numeric_class_labels_in_class_weights(tmp_path):
    run = _run(CONFIGS / "digits.yaml", "training.class_weights={3: 2.5}")
    weights = run.trainer().plan.sample_weights
    assert set(np.unique(weights)) == {1.0, 2.5}


def test_a_checkpoint_written_before_new_config_keys_and_tracker_fields_still_resumes(tmp_path):
    """A checkpoint of the previous version: its config lacks model.leaky_relu_slope and its
    early-stopping state lacks the patience reference. It resumes to the same model."""
    from nncli.files.checkpoint import config_hash
    from tests.test_modelfile import _edit_meta

    common = ["training.early_stopping={patience: 50}", "training.epochs=6"]
    open_session(TrainRequest(CONFIGS / "iris.yaml", common, output=str(tmp_path / "a.npz"))).train()
    first = open_session(TrainRequest(CONFIGS / "iris.yaml", common, output=str(tmp_path / "b.npz")))
    with pytest.raises(InterruptedRun):
        first.train(StopAt(first.trainer, 3, 2))

    def as_previous_version(meta):
        del meta["config"]["model"]["leaky_relu_slope"]
        meta["config_sha256"] = config_hash(meta["config"])
        del meta["trainer"]["early_stopping"]["reference"]

    checkpoint = tmp_path / "b.ckpt.npz"
    _edit_meta(checkpoint, tmp_path / "old.ckpt.npz", as_previous_version).replace(checkpoint)
    open_session(TrainRequest(resume=checkpoint)).train()
    straight, resumed = load_model(tmp_path / "a.npz"), load_model(tmp_path / "b.npz")
    assert all(x.tobytes() == y.tobytes() for x, y in zip(straight.network.parameters(), resumed.network.parameters()))


@pytest.mark.parametrize("overrides", [[], ["training.optimizer=adam"], ["training.clip_norm=1.0"], ["training.optimizer={name: sgd, momentum: 0.9}"]])
def test_a_diverged_batch_changes_nothing_before_the_error(tmp_path, overrides):
    """The loss is checked before any update: the weights and the optimizer's state stay as
    they were after the last finite batch."""
    from nncli.errors import TrainingError

    data = tmp_path / "huge.csv"
    data.write_text("x,y\n" + "".join(f"{i},{1e20 * (i % 3)}\n" for i in range(40)))
    run = _run(CONFIGS / "diabetes.yaml", f"data.train={data}", "data.target=y",
               "data.normalize=none", "data.normalize_target=none", "training.batch_size=40",
               "data.validation_split=0", *overrides)
    trainer = run.trainer()
    before = [p.copy() for p in run.network.parameters()]
    with pytest.raises(TrainingError, match="diverged"):
        run.run(trainer)
    assert trainer.plan.optimizer.steps == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, run.network.parameters()))
