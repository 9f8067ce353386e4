"""Fitting one misalignment network with Keras: Adam and binary
cross-entropy, ReduceLROnPlateau and EarlyStopping on the validation loss,
the best epoch kept, a checkpoint every epoch
(``keras.callbacks.BackupAndRestore``) so an interrupted run resumes, and a
log line per epoch."""

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from ..models.network import KerasModel, build_network
from ..tfutil import import_tensorflow
from ..typealiases import PathLike
from .batches import Batch, make_batches
from .dataset import BoxData

logger = logging.getLogger(__name__)

__all__ = ["train_network", "save_plain", "set_threads"]


def set_threads(threads: int) -> ModuleType:
    """Run TensorFlow with ``threads`` intra-op threads (one inter-op);
    returns the ``tensorflow`` module."""
    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised
        pass
    return tf


def save_plain(model: KerasModel, path: PathLike, name: str) -> None:
    """Save weights in a freshly built (uncompiled) network: no optimizer
    state in the file, so it stays ~1.4 MB."""
    clean = build_network(name)
    clean.set_weights(model.get_weights())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.keras")
    clean.save(str(tmp))
    tmp.replace(path)


def _epoch_logger(keras, name, log):
    """A Keras callback that logs each epoch's losses, accuracy, AUC,
    learning rate and time."""

    class _Log(keras.callbacks.Callback):  # type: ignore[name-defined]
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            lr_now = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            log(
                f"{name} epoch {epoch + 1}: loss {logs.get('loss', np.nan):.4f} "
                f"acc {logs.get('accuracy', np.nan):.3f} val_loss "
                f"{logs.get('val_loss', np.nan):.4f} val_acc "
                f"{logs.get('val_accuracy', np.nan):.3f} val_auc "
                f"{logs.get('val_auc', np.nan):.3f} lr {lr_now:.1e} "
                f"({time.perf_counter() - self.t:.0f} s)"
            )

    return _Log()


def _callbacks(keras, name, workdir, resume, lr_patience, stop_patience, log):
    """Checkpoints (``<name>_backup/``, ``<name>_best.keras``), learning-rate
    schedule, early stopping, history (``<name>_history.csv``) and the log."""
    backup = workdir / f"{name}_backup"
    best = workdir / f"{name}_best.keras"
    history = workdir / f"{name}_history.csv"
    ckpt = keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True)
    if best.is_file() and resume:
        # keep the best value across a resume
        try:
            rows = np.genfromtxt(history, delimiter=",", names=True)
            ckpt.best = float(np.min(np.atleast_1d(rows["val_loss"])))
        except Exception:  # no or partial history
            pass
    return [
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
        ckpt,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.1, patience=int(lr_patience), min_lr=1e-6
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(stop_patience)),
        keras.callbacks.CSVLogger(str(history), append=True),
        _epoch_logger(keras, name, log),
    ]


def _history_info(history, fit, seconds):
    """Epochs run, best epoch and its validation metrics (from the history
    file, across resumes), and this run's time and epochs."""
    rows = np.genfromtxt(history, delimiter=",", names=True)
    vl = np.atleast_1d(rows["val_loss"])
    return {
        "epochs_run": int(len(vl)),
        "best_epoch": int(np.argmin(vl)) + 1,
        "best_val_loss": float(np.min(vl)),
        "best_val_accuracy": float(np.atleast_1d(rows["val_accuracy"])[np.argmin(vl)]),
        "best_val_auc": float(np.atleast_1d(rows["val_auc"])[np.argmin(vl)]),
        "seconds_this_run": round(seconds, 1),
        "epochs_this_run": len(fit.history.get("loss", [])),
    }


def train_network(
    name: str,
    train: BoxData,
    val_xy: Batch,
    groups: Sequence[tuple[int, float, float]],
    workdir: PathLike,
    seed: int,
    epochs: int = 30,
    steps: int = 150,
    batch_size: int = 64,
    lr: float = 1e-4,
    init_weights: list[np.ndarray] | None = None,
    resume: bool = True,
    log: Callable[[str], object] | None = None,
    lr_patience: int = 2,
    stop_patience: int = 5,
) -> tuple[KerasModel, dict]:
    """Train one network with per-epoch checkpoints.

    Parameters
    ----------
    name : str
        ``"strong"`` or ``"weak"``.
    train : BoxData
    val_xy : tuple of numpy.ndarray
        Validation ``(x, y)``.
    groups : sequence
        Class proportions (:data:`STRONG_GROUPS`, :data:`WEAK_GROUPS`).
    workdir : Path
        Checkpoints (``<name>_backup/``), the best epoch (``<name>_best.keras``)
        and the history (``<name>_history.csv``).
    init_weights : list of numpy.ndarray, optional
        Starting weights (the weak network starts from the strong one).
    resume : bool
        Continue from the last checkpoint if there is one.
    lr_patience, stop_patience : int
        Epochs without a lower validation loss before the learning rate is
        divided by 10 / training stops (a small, noisy validation set wants
        more patience).

    Returns
    -------
    model : keras.Model
        With the weights of the best validation epoch.
    info : dict
        Epochs run, best epoch, best validation loss, seconds.
    """
    tf = import_tensorflow()
    keras = tf.keras
    log = log or logger.info
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    best = workdir / f"{name}_best.keras"
    history = workdir / f"{name}_history.csv"
    if not resume:
        shutil.rmtree(workdir / f"{name}_backup", ignore_errors=True)
        for p in (best, history):
            p.unlink(missing_ok=True)
    keras.utils.set_random_seed(int(seed))
    model = build_network(name)
    if init_weights is not None:
        model.set_weights(init_weights)
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    t0 = time.perf_counter()
    callbacks = _callbacks(keras, name, workdir, resume, lr_patience, stop_patience, log)
    batches = make_batches(train, groups, batch_size, steps, seed)
    fit = model.fit(
        batches,
        validation_data=val_xy,
        epochs=int(epochs),
        verbose=0,
        callbacks=callbacks,
        validation_batch_size=128,
    )
    seconds = time.perf_counter() - t0
    if best.is_file():
        model.set_weights(keras.models.load_model(str(best), compile=False).get_weights())
    return model, _history_info(history, fit, seconds)
