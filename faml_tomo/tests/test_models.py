"""The misalignment network: architecture and loading errors."""

import numpy as np
import pytest

from faml_tomo.errors import InputError
from faml_tomo.models import N_PARAMS, N_TRAINABLE, build_network, load_network, scale_feature


@pytest.fixture(scope="module")
def network():
    return build_network()


def test_parameter_count_is_the_papers_plus_the_scale_input(network):
    # the paper's 110,897 + 512 weights from the scale input to the dense layer
    assert network.count_params() == N_PARAMS == 110_897 + 512
    trainable = sum(int(np.prod(w.shape)) for w in network.trainable_weights)
    assert trainable == N_TRAINABLE == 110_641 + 512
    assert [tuple(s) for s in network.input_shape] == [(None, 32, 32, 32, 1), (None, 1)]
    assert tuple(network.output_shape) == (None, 1)


def test_scale_feature_is_log2_and_rejects_bad_values():
    np.testing.assert_allclose(scale_feature([0.5, 1.0, 4.0])[:, 0], [-1, 0, 2])
    assert scale_feature(2.0).shape == (1, 1)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(InputError, match="box scale"):
            scale_feature([1.0, bad])


def test_layers_in_order(network):
    kinds = [type(layer).__name__ for layer in network.layers]
    assert kinds == (
        ["InputLayer"]
        + ["Conv3D", "MaxPooling3D", "BatchNormalization"] * 4
        + ["GlobalAveragePooling3D", "InputLayer", "Concatenate", "Dense", "Dropout", "Dense"]
    )
    assert [layer.filters for layer in network.layers if hasattr(layer, "filters")] == [
        16,
        16,
        32,
        64,
    ]


def test_save_load_round_trip(network, tmp_path):
    path = tmp_path / "strong.keras"
    network.save(path)
    loaded = load_network(path)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 32, 1)).astype(np.float32)
    x = [x, scale_feature([0.5, 2.0])]
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), network.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_missing_and_corrupt_weights_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nothere\.keras: trained network not found"):
        load_network(tmp_path / "nothere.keras")
    bad = tmp_path / "weak.keras"
    bad.write_bytes(b"not a zip archive at all")
    with pytest.raises(InputError, match=r"weak\.keras: cannot load the trained network"):
        load_network(bad)


def test_a_box_only_network_is_refused_with_a_reason(tmp_path):
    from faml_tomo.tfutil import import_tensorflow

    keras = import_tensorflow().keras
    box = keras.layers.Input((32, 32, 32, 1))
    old = keras.Model(box, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling3D()(box)))
    old.save(tmp_path / "strong.keras")
    with pytest.raises(InputError, match="no scale input"):
        load_network(tmp_path / "strong.keras")
