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
threads.  The batches are made in :mod:`.batches`, one network is fitted in
:mod:`.fitting`; this module runs the whole pipeline.
"""

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..models.network import NETWORK_VERSION, STRONG_FILE, WEAK_FILE
from ..tfutil import import_tensorflow
from ..typealiases import PathLike
from .batches import (
    STRONG_GROUPS,
    WEAK_GROUPS,
    augment_flips,
    balanced_batch,
    make_batches,
    validation_arrays,
)
from .dataset import CLASSES, DATA_VERSION, BoxData, generate_shards, load_shards
from .evaluation import confusion, evaluate, tomogram_scores
from .fitting import save_plain, set_threads, train_network

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


def _check_counts(n_train, n_val, epochs, steps, batch_size, n_fine):
    """Raise :class:`InputError` unless the counts are positive integers
    (``n_fine`` >= 0)."""
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


def _training_data(root, seed, n_train, n_val, n_fine, workers, log):
    """Shards generated (or reused) and loaded: training boxes (with the
    fine-sampling set), validation boxes and the seconds spent simulating."""
    t_gen = generate_shards(root, seed, "train", n_train, workers, log)
    t_gen += generate_shards(root, seed, "val", n_val, workers, log)
    if n_fine:
        t_gen += generate_shards(root, seed, "fine", n_fine, workers, log)
    train = load_shards(root, "train", n_train)
    if n_fine:
        train = train.extend(load_shards(root, "fine", n_fine))
    val = load_shards(root, "val", n_val)
    return train, val, t_gen


def _data_sizes(train: BoxData, val: BoxData) -> dict:
    """Boxes per class and tomograms of the training and validation sets."""
    return {
        "train_boxes": {c: int(np.sum(train.label == i)) for i, c in enumerate(CLASSES)},
        "val_boxes": {c: int(np.sum(val.label == i)) for i, c in enumerate(CLASSES)},
        "train_tomograms": int(len(np.unique(train.tomogram))),
        "val_tomograms": int(len(np.unique(val.tomogram))),
    }


def _trained_or_reused(name, path, ck, resume, log, train):
    """The network ``name``: reused from ``path`` when resuming a run that
    finished it (its ``<name>_done`` marker holds its training info), else
    trained by ``train()``, saved and marked done."""
    done = ck / f"{name}_done"
    if resume and path.is_file() and done.is_file():
        model = import_tensorflow().keras.models.load_model(str(path), compile=False)
        info = json.loads(done.read_text())
        log(f"{name} network: already trained, reused")
        return model, info
    model, info = train()
    save_plain(model, path, name)
    done.write_text(json.dumps(info))
    return model, info


def _both_networks(out, ck, resume, log, fit, seed):
    """The strong network (seed ``seed``), then the weak one (``seed + 1``)
    started from the strong one's weights, each reused when a resumed run
    finished it; and their training info."""
    infos = {}
    strong, infos["strong"] = _trained_or_reused(
        "strong", out / STRONG_FILE, ck, resume, log, lambda: fit("strong", STRONG_GROUPS, seed)
    )
    weak, infos["weak"] = _trained_or_reused(
        "weak",
        out / WEAK_FILE,
        ck,
        resume,
        log,
        lambda: fit("weak", WEAK_GROUPS, seed + 1, strong.get_weights()),
    )
    return strong, weak, infos


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
    log: Callable[[str], object] | None = None,
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
    _check_counts(n_train, n_val, epochs, steps, batch_size, n_fine)
    log = log or logger.info
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(cache) / f"v{DATA_VERSION}_seed_{int(seed)}"
    t_all = time.perf_counter()
    train, val, t_gen = _training_data(root, seed, n_train, n_val, n_fine, workers, log)
    sizes = _data_sizes(train, val)
    log(f"data: {sizes}")
    set_threads(threads)
    # one checkpoint folder per data size and batch schedule: a resumed run
    # never picks up the epochs of another set-up (more epochs may be added)
    ck = root / checkpoint_folder(
        n_train, n_val, steps, batch_size, lr_patience, stop_patience, n_fine
    )
    if not resume:
        for marker in ("strong_done", "weak_done"):
            (ck / marker).unlink(missing_ok=True)

    def fit(name, groups, seed_, init_weights=None):
        return train_network(
            name,
            train,
            validation_arrays(val, groups, seed),
            groups,
            ck,
            seed_,
            epochs,
            steps,
            batch_size,
            init_weights=init_weights,
            resume=resume,
            log=log,
            lr_patience=lr_patience,
            stop_patience=stop_patience,
        )

    strong, weak, infos = _both_networks(out, ck, resume, log, fit, seed)
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
