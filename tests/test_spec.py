"""An architecture as one line of text (``--layers``): read with ast, never evaluated; the
banner's description reads back to the same layers."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop import spec
from backprop.errors import ConfigError


def test_names_and_arguments_become_the_registered_layers():
    found = spec.parse("Dense(16), relu, dropout(rate=0.25), Leaky_ReLU, reshape((4, -1)), flatten, dense(3)")
    assert [type(layer) for layer in found] == [bp.Dense, bp.ReLU, bp.Dropout, bp.LeakyReLU, bp.Reshape,
                                                bp.Flatten, bp.Dense]
    assert found[0].out_features == 16 and found[2].rate == 0.25 and found[4].shape == (4, -1)
    assert isinstance(spec.parse("linear")[0], bp.Identity)  # an activation's alias


def test_a_description_reads_back_to_the_same_layers():
    model = bp.Sequential(spec.parse("dense(2, 8, init='he_normal', bias=0.1), tanh, dropout(0.5), dense(1)"),
                          seed=0)
    text = spec.describe(model.layers)
    assert text == ("dense(in_features=2, out_features=8, init='he_normal', bias=0.1), tanh, "
                    "dropout(rate=0.5), dense(in_features=8, out_features=1, init='auto', bias=0.0)")
    again = bp.Sequential(spec.parse(text), seed=0)
    np.testing.assert_array_equal(np.asarray(again.flat_parameters()), np.asarray(model.flat_parameters()))


def test_a_block_of_layers_reads_and_reads_back():
    text = "dense(4, 8), residual([dense(8), relu, dropout(0.1), dense(8)]), layernorm, dense(1)"
    model = bp.Sequential(spec.parse(text), seed=0)
    block = model.layers[1]
    assert isinstance(block, bp.Residual) and [type(layer).name for layer in block.block] == \
        ["dense", "relu", "dropout", "dense"]
    again = bp.Sequential(spec.parse(spec.describe(model.layers)), seed=0)
    assert spec.describe(again.layers) == spec.describe(model.layers)
    np.testing.assert_array_equal(np.asarray(again.flat_parameters()), np.asarray(model.flat_parameters()))


@pytest.mark.parametrize("text, message", [
    ("dense(4), reluu", r"layer 2: unknown layer 'reluu': use one of dense, "),
    ("dense(4, __import__('os').system('true'))", r"layer 1 \(.*\) is not a name or a name\(arguments\)"),
    ("dense(__import__('os'))", r"layer 1: unknown layer '__import__'"),
    ("dense(4, x)", r"layer 1: unknown layer 'x'"),
    ("dense(4, 1 + 2)", r"layer 1: the argument '1 \+ 2' is not a literal"),
    ("dense(4) + relu", r"layer 1 \('dense\(4\) \+ relu'\) is not a name or a name\(arguments\)"),
    ("dense(**{'out_features': 3})", r"layer 1 \(dense\): \*\*arguments are not accepted"),
    ("dense(4,", r"cannot read the layers 'dense\(4,' \(column"),
    ("dropout(2)", r"layer 1 \(dropout\): Dropout rate must be a number in \[0, 1\)"),
    ("dense(4, nodes=3)", r"layer 1 \(dense\): .*unexpected keyword argument 'nodes'"),
    ("", "give the layers as a comma-separated list"),
])
def test_anything_else_is_refused_in_one_line_naming_the_item(text, message):
    with pytest.raises(ConfigError, match=message):
        spec.parse(text)
