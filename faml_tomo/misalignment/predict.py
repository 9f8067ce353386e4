"""Scoring bead boxes with the trained strong and weak networks.

The networks are loaded once per run and applied in batches.  TensorFlow
runs on the CPU unless a GPU is asked for.
"""

import logging
import os
from pathlib import Path

import numpy as np

from ..constants import DEFAULT_MODELS_DIR, MODELS_DIR_VAR
from ..errors import InputError
from ..models.network import STRONG_FILE, WEAK_FILE, load_network, scale_feature
from ..tfutil import import_tensorflow
from ..typealiases import PathLike

logger = logging.getLogger(__name__)

__all__ = ["models_dir", "MisalignmentScorer"]


def models_dir(path: PathLike | None = None) -> Path:
    """Folder of the trained networks: ``path``, else $FAML_TOMO_MODELS,
    else the weights shipped in the package."""
    return Path(path or os.environ.get(MODELS_DIR_VAR) or DEFAULT_MODELS_DIR)


def _device_name(gpu):
    if gpu is None or gpu == "" or gpu == "cpu":
        return "/CPU:0"
    try:
        return f"/GPU:{int(gpu)}"
    except (TypeError, ValueError):
        raise InputError(f"GPU must be an index such as 0, got {gpu!r}") from None


class MisalignmentScorer:
    """Both networks, loaded once.

    Parameters
    ----------
    model_dir : str or Path, optional
        Folder with ``strong.keras`` and ``weak.keras`` (see :func:`models_dir`).
    gpu : int, optional
        GPU index; None (default) runs on the CPU.
    batch_size : int
        Boxes per prediction batch.
    """

    def __init__(
        self, model_dir: PathLike | None = None, gpu: int | str | None = None, batch_size: int = 64
    ) -> None:
        folder = models_dir(model_dir)
        self.device = _device_name(gpu)
        tf = import_tensorflow()
        if self.device.startswith("/GPU"):
            gpus = tf.config.list_physical_devices("GPU")
            index = int(self.device.rsplit(":", 1)[1])
            if index >= len(gpus):
                raise InputError(f"GPU {index} requested but TensorFlow sees {len(gpus)} GPU(s)")
        self.batch_size = int(batch_size)
        self.strong = load_network(folder / STRONG_FILE)
        self.weak = load_network(folder / WEAK_FILE)

    def _predict(self, model, boxes, feature):
        tf = import_tensorflow()
        out = np.empty(len(boxes), np.float32)
        with tf.device(self.device):
            for start in range(0, len(boxes), self.batch_size):
                stop = start + self.batch_size
                batch = [boxes[start:stop, ..., None], feature[start:stop]]
                out[start : start + len(batch[0])] = model(batch, training=False).numpy()[:, 0]
        return out

    def score(
        self, boxes: np.ndarray, scale: np.ndarray, weak: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores of normalised boxes.

        Parameters
        ----------
        boxes : numpy.ndarray, shape (n, 32, 32, 32)
            From :func:`faml_tomo.misalignment.extract_boxes`.
        scale : float or numpy.ndarray, shape (n,)
            Box voxel size in tomogram pixels (``BoxSet.scale``: bead
            diameter in pixels / 16).  The classes are defined in tomogram
            pixels, so the networks need it.
        weak : bool
            Also run the weak network.

        Returns
        -------
        strong, weak : numpy.ndarray, shape (n,)
            Probabilities of "aligned"; ``weak`` is None when not run.
        """
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.ndim != 4 or boxes.shape[1:] != (32, 32, 32):
            raise InputError(f"boxes must have shape (n, 32, 32, 32), got {boxes.shape}")
        if len(boxes) == 0:
            empty = np.zeros(0, np.float32)
            return empty, (empty if weak else None)
        feature = scale_feature(scale, len(boxes))
        strong = self._predict(self.strong, boxes, feature)
        return strong, (self._predict(self.weak, boxes, feature) if weak else None)
