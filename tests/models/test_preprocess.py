import math

import pytest

from klugerhans.errors import KlugerhansError
from klugerhans.models.preprocess import Normalization


@pytest.mark.parametrize(
    ("mean", "std"),
    [((0.5, 0.5), (0.2, 0.2, 0.2)), ((0.5,) * 3, (0.2, 0.0, 0.2)), ((math.nan, 0.5, 0.5), (0.2,) * 3)],
)
def test_a_bad_normalization_is_a_one_line_klugerhans_error(mean, std):
    with pytest.raises(KlugerhansError, match="need three finite means and three positive finite stds") as err:
        Normalization(mean, std)
    assert "\n" not in str(err.value)
