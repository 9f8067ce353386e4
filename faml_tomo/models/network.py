"""The misalignment-detection network (de Isidro-Gómez et al. 2024).

One architecture serves both the strong and the weak network::

    box (32, 32, 32, 1)
    -> 4 x [Conv3D(k=3, same, relu) -> MaxPool3D(2) -> BatchNormalization]
       with 16, 16, 32, 64 filters
    -> GlobalAveragePooling3D -> concatenate with scale (1,)
    -> Dense(512, relu) -> Dropout(0.2) -> Dense(1, sigmoid)

The convolutional part is the paper's (110,897 parameters in the paper's
network).  One input is added: ``scale``, log2 of the box voxel size in
tomogram pixels (:func:`scale_feature`).  The boxes are resampled so the
bead spans 16 voxels, while the classes are defined by the residual in
*tomogram* pixels; without the scale the same smear in box voxels is weak
misalignment at 5 Å/px and alignment jitter at 20 Å/px, and the network
cannot tell them apart (measured: weak boxes flagged 0.99 at scale < 0.4,
0.75 at scale > 1.5).  The extra input costs 512 weights: 111,409
parameters (111,153 trainable).  The output is the probability that the
box around a fiducial comes from an *aligned* tomogram (1 = aligned,
0 = misaligned).

TensorFlow is imported inside the functions: this module is imported by the
protocols, which Scipion loads whenever it loads any protocol.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from ..tfutil import import_tensorflow
from ..typealiases import PathLike

logger = logging.getLogger(__name__)

BOX_SIZE = 32
# 2: the scale input (December 2026); 1: the paper's box-only network
NETWORK_VERSION = 2
FILTERS = (16, 16, 32, 64)
DENSE_UNITS = 512
DROPOUT = 0.2
N_PARAMS = 111_409
N_TRAINABLE = 111_153
STRONG_FILE = "strong.keras"
WEAK_FILE = "weak.keras"

# A ``keras.Model``: TensorFlow is imported inside the functions, so the
# annotations cannot name its class.
KerasModel = Any


def scale_feature(scale: ArrayLike, n: int | None = None) -> np.ndarray:
    """The network's ``scale`` input: log2 of the box voxel size in
    tomogram pixels (bead diameter in pixels / 16), shape ``(n, 1)`` float32.

    Parameters
    ----------
    scale : float or array_like, shape (n,)
        Box voxel size in tomogram pixels (``BoxSet.scale``); > 0.
    n : int, optional
        Number of boxes: one ``scale`` is repeated for all of them.
    """
    s = np.asarray(scale, dtype=np.float64)
    if n is not None:
        s = np.broadcast_to(s, (int(n),))
    s = s.reshape(-1, 1)
    if not np.all(np.isfinite(s) & (s > 0)):
        raise InputError(f"box scale must be finite and > 0, got {s.ravel()[:4]}")
    return np.log2(s).astype(np.float32)


def build_network(name: str = "misalignment", box_size: int = BOX_SIZE) -> KerasModel:
    """Build (not train) the network.

    Parameters
    ----------
    name : str
        Keras model name (e.g. ``"strong"`` or ``"weak"``).
    box_size : int
        Edge of the cubic input box in voxels (32 in the paper).

    Returns
    -------
    keras.Model
        Inputs ``[box (batch, box, box, box, 1), scale (batch, 1)]`` float32
        (``scale`` from :func:`scale_feature`), output ``(batch, 1)``.
    """
    tf = import_tensorflow()
    layers = tf.keras.layers
    box = layers.Input(shape=(box_size, box_size, box_size, 1), name="box")
    scale = layers.Input(shape=(1,), name="scale")
    x = box
    for i, n_filters in enumerate(FILTERS):
        x = layers.Conv3D(n_filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        x = layers.MaxPooling3D(2, name=f"pool{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    x = layers.Concatenate(name="with_scale")([x, scale])
    x = layers.Dense(DENSE_UNITS, activation="relu", name="dense")(x)
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="aligned")(x)
    return tf.keras.Model([box, scale], outputs, name=name)


def load_network(path: PathLike) -> KerasModel:
    """Load a trained network from a ``.keras`` file.

    Raises
    ------
    InputError
        If the file is missing, unreadable or not a network of this
        architecture; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: trained network not found (expected a .keras "
            f"file; set FAML_TOMO_MODELS or pass the model folder)"
        )
    tf = import_tensorflow()
    try:
        model = tf.keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # keras raises many types for bad files
        raise InputError(
            f"{path}: cannot load the trained network ({type(exc).__name__}: {exc})"
        ) from exc
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    shapes = [tuple(s[1:]) for s in shapes]
    if shapes != [(BOX_SIZE, BOX_SIZE, BOX_SIZE, 1), (1,)] or model.count_params() != N_PARAMS:
        raise InputError(
            f"{path}: not a misalignment network of this architecture "
            f"(inputs {shapes}, {model.count_params()} parameters; networks "
            f"trained before December 2026 had no scale input: retrain, "
            f"or use the weights shipped with this version)"
        )
    logger.info("loaded %s", path)
    return model
