"""errsweep6 H2/H7/H12: a Keras file's config that is not UTF-8, holds an integer of thousands of
digits, or names a key twice is refused saying so (it was a 500, Python's own words, or the last
value silently)."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest

from gradhealth.errors import InputFormatError
from gradhealth.library import check_keras

_CONFIG = ('{"class_name": "Sequential", "config": {"name": "s", "layers": [{"class_name": "InputLayer", '
           '"config": {"batch_shape": [null, 4], "name": "in"}}, {"class_name": "Dense", "config": '
           '{"name": "d", "units": UNITS, "activation": "softmax"}}]}}')


def _h5(config: bytes, fixed: bool) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        # a fixed-length string comes back as bytes; a variable-length one as str, its bad bytes
        # as surrogate escapes
        f.attrs["model_config"] = np.bytes_(config) if fixed else config
    return buf.getvalue()


@pytest.mark.parametrize("fixed", [True, False])
def test_a_model_config_that_is_not_utf8_names_the_attribute_and_the_byte(fixed: bool) -> None:
    raw = _CONFIG.replace("UNITS", "3").replace('"name": "d"', '"name": "d\xe9"').encode("latin-1")
    with pytest.raises(InputFormatError) as caught:
        check_keras(_h5(raw, fixed))
    message, at = str(caught.value), raw.index(bytes([0xE9]))
    assert "`model_config` is not UTF-8" in message and f"byte {at} is 0xe9" in message


def test_an_integer_of_thousands_of_digits_is_refused_in_our_words() -> None:
    with pytest.raises(InputFormatError) as caught:
        check_keras(_CONFIG.replace("UNITS", "9" * 5000).encode())
    assert "an integer of 5,000 digits" in str(caught.value)
    assert "set_int_max_str_digits" not in str(caught.value)


def test_a_key_named_twice_is_refused_not_the_last_kept() -> None:
    twice = _CONFIG.replace("UNITS", "3").replace('"units": 3', '"units": 3, "units": 300')
    with pytest.raises(InputFormatError) as caught:
        check_keras(twice.encode())
    assert "'units' appears twice" in str(caught.value)
