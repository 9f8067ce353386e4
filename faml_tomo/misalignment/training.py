"""Training the strong and weak misalignment networks on simulated data.

Pipeline (:func:`train_misalignment`):

1. Simulate (or reuse from the cache) training and validation specimens
   (:mod:`.dataset`): each gives an aligned, a weakly and a strongly
   misaligned tomogram of the same specimen, boxes extracted as at
   inference.  Validation specimens have their own seeds.
2. Strong network: output 1 ("aligned") for boxes of aligned and weakly
   misaligned tomograms, 0 for strongly misaligned ones; balanced batches
   (half strong, a quarter aligned, a quarter weak).
3. Weak network, initialised with the strong network's weights: aligned (1)
   against weakly misaligned (0), half and half.
4. Both: Adam (lr 1e-4), binary cross-entropy, batches of 64, augmentation
   by the 8 sign flips of the box axes (the 180-degree rotations about Z, Y
   and X and the mirrors; they map a single-axis tilt geometry about Y onto
   another valid one), ReduceLROnPlateau, EarlyStopping on the validation
   loss, the best epoch kept.  A checkpoint is written every epoch
   (``keras.callbacks.BackupAndRestore``) so an interrupted run resumes.
5. Tomogram-level validation: mean scores per held-out tomogram, decision
   with :func:`faml_tomo.misalignment.decide`, confusion matrix.

Everything is seeded; TensorFlow runs on the CPU with a fixed number of
threads.
"""

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..models.network import NETWORK_VERSION, STRONG_FILE, WEAK_FILE, build_network, scale_feature
from ..tfutil import import_tensorflow
from ..typealiases import PathLike
from .dataset import (
    ALIGNED_ID,
    CLASSES,
    DATA_VERSION,
    STRONG_ID,
    WEAK_ID,
    generate_shards,
    load_shards,
)
from .evaluation import confusion, evaluate, tomogram_scores

logger = logging.getLogger(__name__)

__all__ = [
    "augment_flips",
    "balanced_batch",
    "make_batches",
    "train_network",
    "tomogram_scores",
    "confusion",
    "evaluate",
    "train_misalignment",
    "STRONG_GROUPS",
    "WEAK_GROUPS",
]

# (class id, fraction of each batch, target: 1 = aligned)
STRONG_GROUPS = ((STRONG_ID, 0.5, 0.0), (ALIGNED_ID, 0.25, 1.0), (WEAK_ID, 0.25, 1.0))
WEAK_GROUPS = ((WEAK_ID, 0.5, 0.0), (ALIGNED_ID, 0.5, 1.0))


def augment_flips(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip each box along a random subset of its three axes (in place
    where possible); returns the array."""
    flips = rng.random((len(boxes), 3)) < 0.5
    for i, f in enumerate(flips):
        axes = tuple(int(a) for a in np.nonzero(f)[0])
        if axes:
            boxes[i] = np.flip(boxes[i], axis=axes)
    return boxes


def balanced_batch(
    data: Any, groups: Sequence, batch_size: int, rng: np.random.Generator, augment: bool = True
) -> tuple:
    """One batch drawn with fixed class proportions.

    Parameters
    ----------
    data : BoxData
    groups : sequence of (class id, fraction, target)
    batch_size : int
    rng : numpy.random.Generator
    augment : bool

    Returns
    -------
    (x, scale) : numpy.ndarray, (batch, 32, 32, 32, 1) and (batch, 1) float32
        Boxes and their :func:`~faml_tomo.models.network.scale_feature`.
    y : numpy.ndarray, (batch,) float32
    """
    counts = [int(round(f * batch_size)) for _, f, _ in groups]
    counts[0] += batch_size - sum(counts)
    idx, ys = [], []
    for (cid, _, target), n in zip(groups, counts):
        pool = np.flatnonzero(data.label == cid)
        if len(pool) == 0:
            raise InputError(f"no training boxes of class {CLASSES[cid]!r}")
        idx.append(rng.choice(pool, n, replace=len(pool) < n))
        ys.append(np.full(n, target, np.float32))
    idx = np.concatenate(idx)
    x = data.boxes[idx].astype(np.float32)
    if augment:
        augment_flips(x, rng)
    return (x[..., None], scale_feature(data.scale[idx])), np.concatenate(ys)


def make_batches(
    data: Any, groups: Sequence, batch_size: int, steps: int, seed: int, augment: bool = True
) -> Any:
    """A ``keras.utils.PyDataset`` of ``steps`` balanced batches per epoch,
    different every epoch, reproducible from ``seed``."""
    tf = import_tensorflow()

    class _Batches(tf.keras.utils.PyDataset):  # type: ignore[name-defined]
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0

        def __len__(self):
            return int(steps)

        def __getitem__(self, i):
            rng = np.random.default_rng([int(seed), self.epoch, int(i)])
            return balanced_batch(data, groups, batch_size, rng, augment)

        def on_epoch_end(self):
            self.epoch += 1

    return _Batches()


def _validation_arrays(data, groups, seed, max_per_group=600):
    """Class-balanced validation boxes (no augmentation)."""
    rng = np.random.default_rng([int(seed), 99])
    idx, ys = [], []
    n = min(max_per_group, *(int(np.sum(data.label == cid)) for cid, _, _ in groups))
    for cid, _, target in groups:
        pool = np.flatnonzero(data.label == cid)
        idx.append(np.sort(rng.choice(pool, n, replace=False)))
        ys.append(np.full(n, target, np.float32))
    idx = np.concatenate(idx)
    return (
        (data.boxes[idx].astype(np.float32)[..., None], scale_feature(data.scale[idx])),
        np.concatenate(ys),
    )


def _set_threads(threads):
    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised
        pass
    return tf


def _save_plain(model, path, name):
    """Save weights in a freshly built (uncompiled) network: no optimizer
    state in the file, so it stays ~1.4 MB."""
    clean = build_network(name)
    clean.set_weights(model.get_weights())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.keras")
    clean.save(str(tmp))
    tmp.replace(path)


def train_network(
    name: str,
    train: Any,
    val_xy: tuple,
    groups: Sequence,
    workdir: PathLike,
    seed: int,
    epochs: int = 30,
    steps: int = 150,
    batch_size: int = 64,
    lr: float = 1e-4,
    init_weights: PathLike | None = None,
    resume: bool = True,
    log: Callable | None = None,
    lr_patience: int = 2,
    stop_patience: int = 5,
) -> tuple[Any, dict]:
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
    backup = workdir / f"{name}_backup"
    best = workdir / f"{name}_best.keras"
    history = workdir / f"{name}_history.csv"
    if not resume:
        shutil.rmtree(backup, ignore_errors=True)
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

    ckpt = keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True)
    if best.is_file() and resume:
        # keep the best value across a resume
        try:
            rows = np.genfromtxt(history, delimiter=",", names=True)
            ckpt.best = float(np.min(np.atleast_1d(rows["val_loss"])))
        except Exception:  # no or partial history
            pass
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
        ckpt,
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.1, patience=int(lr_patience), min_lr=1e-6
        ),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(stop_patience)),
        keras.callbacks.CSVLogger(str(history), append=True),
        _Log(),
    ]
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
    rows = np.genfromtxt(history, delimiter=",", names=True)
    vl = np.atleast_1d(rows["val_loss"])
    info = {
        "epochs_run": int(len(vl)),
        "best_epoch": int(np.argmin(vl)) + 1,
        "best_val_loss": float(np.min(vl)),
        "best_val_accuracy": float(np.atleast_1d(rows["val_accuracy"])[np.argmin(vl)]),
        "best_val_auc": float(np.atleast_1d(rows["val_auc"])[np.argmin(vl)]),
        "seconds_this_run": round(seconds, 1),
        "epochs_this_run": len(fit.history.get("loss", [])),
    }
    return model, info


def checkpoint_folder(
    n_train: int,
    n_val: int,
    steps: int,
    batch_size: int,
    lr_patience: int = 2,
    stop_patience: int = 5,
    n_fine: int = 0,
) -> str:
    """Name of a training run's checkpoint folder inside its data cache
    (network version; fine-sampling specimens and patience only when not the
    defaults 0 and 2 / 5)."""
    name = (
        f"checkpoints_net{NETWORK_VERSION}_n{int(n_train)}_v{int(n_val)}"
        f"_s{int(steps)}_b{int(batch_size)}"
    )
    if int(n_fine):
        name += f"_f{int(n_fine)}"
    if (int(lr_patience), int(stop_patience)) != (2, 5):
        name += f"_p{int(lr_patience)}-{int(stop_patience)}"
    return name


def train_misalignment(
    out: PathLike,
    seed: int = 0,
    n_train: int = 300,
    n_val: int = 40,
    epochs: int = 30,
    steps: int = 150,
    batch_size: int = 64,
    cache: PathLike = ".cache/misalignment",
    resume: bool = False,
    workers: int = 2,
    threads: int = 2,
    log: Callable | None = None,
    lr_patience: int = 2,
    stop_patience: int = 5,
    n_fine: int = 0,
) -> dict:
    """The whole training run (see the module docstring).

    Parameters
    ----------
    out : str or Path
        Output folder: ``strong.keras``, ``weak.keras``, ``metrics.json``.
    seed : int
        Data and training seed.
    n_train, n_val : int
        Training / validation specimens (3 tomograms each).
    epochs, steps, batch_size : int
        Maximum epochs, batches per epoch, boxes per batch.
    cache : str or Path
        Shards (``<cache>/v<DATA_VERSION>_seed_<seed>/{train,val}/``) and
        checkpoints (``<cache>/v<DATA_VERSION>_seed_<seed>/`` +
        :func:`checkpoint_folder`).
    resume : bool
        Continue interrupted training from its checkpoints (shards are
        always reused).
    workers : int
        Processes for data generation.
    threads : int
        TensorFlow threads.
    lr_patience, stop_patience : int
        See :func:`train_network`.
    n_fine : int
        Extra training specimens at fine sampling (set ``"fine"``: the bead
        spans >= 16 px), where the log-uniform draw leaves few.

    Returns
    -------
    dict
        Sizes, timings and validation metrics (also in ``metrics.json``).
    """
    if int(n_fine) != n_fine or n_fine < 0:
        raise InputError(f"n_fine must be an integer >= 0, got {n_fine}")
    for name, v in (
        ("n_train", n_train),
        ("n_val", n_val),
        ("epochs", epochs),
        ("steps", steps),
        ("batch_size", batch_size),
    ):
        if int(v) != v or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v}")
    log = log or logger.info
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cache) / f"v{DATA_VERSION}_seed_{int(seed)}"
    t_all = time.perf_counter()
    t_gen = generate_shards(root, seed, "train", n_train, workers, log)
    t_gen += generate_shards(root, seed, "val", n_val, workers, log)
    if n_fine:
        t_gen += generate_shards(root, seed, "fine", n_fine, workers, log)
    train = load_shards(root, "train", n_train)
    if n_fine:
        train = train.extend(load_shards(root, "fine", n_fine))
    val = load_shards(root, "val", n_val)
    sizes = {
        "train_boxes": {c: int(np.sum(train.label == i)) for i, c in enumerate(CLASSES)},
        "val_boxes": {c: int(np.sum(val.label == i)) for i, c in enumerate(CLASSES)},
        "train_tomograms": int(len(np.unique(train.tomogram))),
        "val_tomograms": int(len(np.unique(val.tomogram))),
    }
    log(f"data: {sizes}")
    _set_threads(threads)
    # one checkpoint folder per data size and batch schedule: a resumed run
    # never picks up the epochs of another set-up (more epochs may be added)
    ck = root / checkpoint_folder(
        n_train, n_val, steps, batch_size, lr_patience, stop_patience, n_fine
    )
    strong_path, weak_path = out / STRONG_FILE, out / WEAK_FILE
    infos = {}
    tf = import_tensorflow()
    if not resume:
        for marker in ("strong_done", "weak_done"):
            (ck / marker).unlink(missing_ok=True)
    if resume and strong_path.is_file() and (ck / "strong_done").is_file():
        strong = tf.keras.models.load_model(str(strong_path), compile=False)
        log("strong network: already trained, reused")
    else:
        strong, infos["strong"] = train_network(
            "strong",
            train,
            _validation_arrays(val, STRONG_GROUPS, seed),
            STRONG_GROUPS,
            ck,
            seed,
            epochs,
            steps,
            batch_size,
            resume=resume,
            log=log,
            lr_patience=lr_patience,
            stop_patience=stop_patience,
        )
        _save_plain(strong, strong_path, "strong")
        (ck / "strong_done").write_text(json.dumps(infos["strong"]))
    if (ck / "strong_done").is_file() and "strong" not in infos:
        infos["strong"] = json.loads((ck / "strong_done").read_text())
    if resume and weak_path.is_file() and (ck / "weak_done").is_file():
        weak = tf.keras.models.load_model(str(weak_path), compile=False)
        infos["weak"] = json.loads((ck / "weak_done").read_text())
        log("weak network: already trained, reused")
    else:
        weak, infos["weak"] = train_network(
            "weak",
            train,
            _validation_arrays(val, WEAK_GROUPS, seed),
            WEAK_GROUPS,
            ck,
            seed + 1,
            epochs,
            steps,
            batch_size,
            init_weights=strong.get_weights(),
            resume=resume,
            log=log,
            lr_patience=lr_patience,
            stop_patience=stop_patience,
        )
        _save_plain(weak, weak_path, "weak")
        (ck / "weak_done").write_text(json.dumps(infos["weak"]))
    metrics, _ = evaluate(strong, weak, val)
    result = {
        "seed": int(seed),
        "n_train": int(n_train),
        "n_val": int(n_val),
        "n_fine": int(n_fine),
        "sizes": sizes,
        "training": infos,
        "validation": metrics,
        "seconds_generation_this_run": round(t_gen, 1),
        "seconds_total_this_run": round(time.perf_counter() - t_all, 1),
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    log(f"validation: {json.dumps(metrics)}")
    return result
