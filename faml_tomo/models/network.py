"""The misalignment-detection network (de Isidro-Gómez et al. 2024).

One architecture serves both the strong and the weak network::

    Input (32, 32, 32, 1)
    -> 4 x [Conv3D(k=3, same, relu) -> MaxPool3D(2) -> BatchNormalization]
       with 16, 16, 32, 64 filters
    -> GlobalAveragePooling3D -> Dense(512, relu) -> Dropout(0.2)
    -> Dense(1, sigmoid)

110,897 parameters (110,641 trainable), as in the paper.  The output is the
probability that the box around a fiducial comes from an *aligned*
tomogram (1 = aligned, 0 = misaligned).

TensorFlow is imported inside the functions: this module is imported by the
protocols, which Scipion loads whenever it loads any protocol.
"""
import logging
from pathlib import Path

from ..errors import InputError
from ..tfutil import import_tensorflow

logger = logging.getLogger(__name__)

BOX_SIZE = 32
FILTERS = (16, 16, 32, 64)
DENSE_UNITS = 512
DROPOUT = 0.2
N_PARAMS = 110_897
N_TRAINABLE = 110_641
STRONG_FILE = "strong.keras"
WEAK_FILE = "weak.keras"


def build_network(name="misalignment", box_size=BOX_SIZE):
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
        Input ``(batch, box, box, box, 1)`` float32, output ``(batch, 1)``.
    """
    tf = import_tensorflow()
    layers = tf.keras.layers
    inputs = layers.Input(shape=(box_size, box_size, box_size, 1), name="box")
    x = inputs
    for i, n_filters in enumerate(FILTERS):
        x = layers.Conv3D(n_filters, 3, padding="same", activation="relu",
                          name=f"conv{i + 1}")(x)
        x = layers.MaxPooling3D(2, name=f"pool{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
    x = layers.GlobalAveragePooling3D(name="gap")(x)
    x = layers.Dense(DENSE_UNITS, activation="relu", name="dense")(x)
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="aligned")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def load_network(path):
    """Load a trained network from a ``.keras`` file.

    Raises
    ------
    InputError
        If the file is missing, unreadable or not a network of this
        architecture; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: trained network not found (expected a .keras "
                         f"file; set FAML_TOMO_MODELS or pass the model folder)")
    tf = import_tensorflow()
    try:
        model = tf.keras.models.load_model(str(path), compile=False)
    except Exception as exc:        # keras raises many types for bad files
        raise InputError(f"{path}: cannot load the trained network "
                         f"({type(exc).__name__}: {exc})") from exc
    shape = tuple(model.input_shape[1:])
    if shape != (BOX_SIZE, BOX_SIZE, BOX_SIZE, 1) or model.count_params() != N_PARAMS:
        raise InputError(f"{path}: not a misalignment network of this architecture "
                         f"(input {shape}, {model.count_params()} parameters)")
    logger.info("loaded %s", path)
    return model
