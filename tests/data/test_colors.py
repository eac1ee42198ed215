import numpy as np
import pytest

from klugerhans.data.colors import parse_color
from klugerhans.data.sticker import StickerConfig
from klugerhans.errors import KlugerhansError


@pytest.mark.parametrize(
    ("value", "rgb"),
    [
        ("#000000", (0, 0, 0)),
        ("#FF8000", (255, 128, 0)),
        ("ff8000", (255, 128, 0)),
        ("#0f0", (0, 255, 0)),
        ("rgba(10, 20, 30, 1)", (10, 20, 30)),
        ("rgb(10.4,20,30)", (10, 20, 30)),
        (" Yellow ", (255, 220, 0)),
        ([1, 2, 3], (1, 2, 3)),
        ((np.uint8(7), 255.0, 0), (7, 255, 0)),
    ],
)
def test_parse_color_reads_every_form(value, rgb):
    assert parse_color(value) == rgb


@pytest.mark.parametrize(
    "value",
    ["red", "#12345", "rgb(1, 2, 300)", "rgb(., 1, 2)", "#gggggg", "", (0, 0), (0, 0, 256), (0.5, 0, 0), (True, 0, 0)],
)
def test_parse_color_rejects_garbage_in_one_line(value):
    with pytest.raises(KlugerhansError) as err:
        parse_color(value)
    assert "\n" not in str(err.value) and "colour" in str(err.value)


def test_the_error_names_what_the_colour_is_for():
    with pytest.raises(KlugerhansError, match=r"^sticker colour must be three values 0\.\.255"):
        StickerConfig(color=(0, 0, 999))


def test_a_bad_colour_flag_is_a_one_line_usage_error(capsys):
    from klugerhans.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["train", "--out", "r", "--sticker-color", "mauve"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and "--sticker-color: cannot read the colour 'mauve'" in err
