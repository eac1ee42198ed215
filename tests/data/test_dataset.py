import numpy as np
import pytest

from klugerhans.data.classes import CLASS_NAMES_DE, CLASS_NAMES_EN, check_class_id, class_name
from klugerhans.data.dataset import SignData, load_dataset, split_by_track, take_balanced
from klugerhans.errors import KlugerhansError


def _data(n_classes: int = 4, tracks_per_class: int = 6, frames: int = 5) -> SignData:
    labels, tracks = [], []
    for c in range(n_classes):
        for t in range(tracks_per_class):
            labels += [c] * frames
            tracks += [t] * frames  # track ids restart per class, as in GTSRB
    n = len(labels)
    return SignData(
        np.zeros((n, 8, 8, 3), np.uint8),
        np.array(labels, np.int64),
        np.array(tracks, np.int64),
        np.zeros((n, 4), np.float32),
        np.array([str(i) for i in range(n)]),
    )


def test_split_by_track_has_no_leak_and_covers_every_class():
    data = _data()
    train, val = split_by_track(data, 0.2, seed=1)
    assert len(train) + len(val) == len(data)
    pairs_train = set(zip(train.labels.tolist(), train.tracks.tolist(), strict=True))
    pairs_val = set(zip(val.labels.tolist(), val.tracks.tolist(), strict=True))
    assert not pairs_train & pairs_val
    assert set(val.labels.tolist()) == set(train.labels.tolist()) == {0, 1, 2, 3}
    # whole tracks move: every val track keeps all its frames
    assert len(val) % 5 == 0


def test_split_by_track_is_deterministic():
    data = _data()
    a = split_by_track(data, 0.3, seed=5)[1]
    b = split_by_track(data, 0.3, seed=5)[1]
    assert np.array_equal(a.sources, b.sources)


def test_split_rejects_bad_fraction():
    with pytest.raises(KlugerhansError):
        split_by_track(_data(), 1.0)


def test_take_balanced_keeps_every_class():
    sub = take_balanced(_data(), 8, seed=0)
    assert len(sub) == 8 and set(sub.labels.tolist()) == {0, 1, 2, 3}


def test_signdata_rejects_inconsistent_arrays():
    with pytest.raises(ValueError):
        SignData(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(3, np.int64), np.zeros(2), np.zeros((2, 4)), np.zeros(2))


def test_class_names_in_two_languages():
    assert len(CLASS_NAMES_EN) == len(CLASS_NAMES_DE) == 43
    assert class_name(4) == "Speed limit (70km/h)"
    assert "70" in class_name(4, "de") and class_name(14, "de").startswith("Halt")
    with pytest.raises(KlugerhansError):
        class_name(43)


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (42, 42), ("7", 7), (" 4 ", 4), (np.int64(5), 5), (2.0, 2)])
def test_check_class_id_accepts_whole_numbers_and_text(value, expected):
    assert check_class_id(value) == expected and type(check_class_id(value)) is int


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (43, {}, "^unknown class id 43: GTSRB class ids run from 0 to 42$"),
        (-1, {"what": "label"}, "^unknown label -1: GTSRB class ids run from 0 to 42$"),
        (5, {"num_classes": 5}, "^unknown class id 5: this model's class ids run from 0 to 4$"),
        ("x", {}, "^class id must be a whole number .*got 'x'$"),
        (2.5, {}, "whole number"),
        (True, {}, "whole number"),
        (None, {}, "whole number"),
    ],
)
def test_check_class_id_rejects_with_one_line(value, kwargs, message):
    with pytest.raises(KlugerhansError, match=message):
        check_class_id(value, **kwargs)


def test_unknown_dataset_is_a_one_line_error():
    with pytest.raises(KlugerhansError, match="unknown dataset"):
        load_dataset("imagenet")
