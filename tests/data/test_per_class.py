"""How many synthetic signs are rendered per class is a setting of the data, the training run and the demo."""

import numpy as np
import pytest

from klugerhans.data.dataset import load_dataset
from klugerhans.errors import KlugerhansError
from klugerhans.models.training import TrainConfig


def test_per_class_sets_the_synthetic_training_split_only():
    ds = load_dataset("synthetic", per_class=10)
    assert len(ds.train) == 10 * 43 and np.all(ds.train.class_counts() == 10)
    assert len(ds.test) == len(load_dataset("synthetic", max_images=43 * 50).test)  # the test split is unchanged
    same = load_dataset("synthetic", per_class=10)
    assert np.array_equal(ds.train.images, same.train.images)


def test_per_class_is_refused_where_it_means_nothing():
    with pytest.raises(KlugerhansError, match="synthetic"):
        load_dataset("gtsrb", data_dir="/nonexistent", per_class=10)
    with pytest.raises(KlugerhansError, match="at least 2"):
        load_dataset("synthetic", per_class=1)
    with pytest.raises(KlugerhansError, match=r"^--per-class applies to synthetic only$"):
        TrainConfig(data="gtsrb", per_class=100)
