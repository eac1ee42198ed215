"""The suite grid: seeded, balanced over every axis, never always class 4, jobs that round-trip."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from klugerhans.bench.grid import ARTEFACTS, SUITES, BenchJob, SuiteConfig, make_suite, run_order
from klugerhans.errors import KlugerhansError
from klugerhans.models.recipe import TrainConfig


def test_the_same_suite_gives_the_same_jobs():
    first, second = make_suite("small"), make_suite("small")
    assert [j.to_dict() for j in first] == [j.to_dict() for j in second]


def test_small_suite_sizes_ids_and_controls():
    jobs = make_suite("small")
    manipulated = [j for j in jobs if j.manipulated]
    clean = [j for j in jobs if not j.manipulated]
    assert len(manipulated) >= 24 and len(clean) >= 12
    assert len({j.id for j in jobs}) == len(jobs)
    assert len({j.recipe.seed for j in jobs}) == len(jobs)
    assert all(j.recipe.sticker.fraction == 0 and j.target is None for j in clean)
    assert all(j.recipe.data == "synthetic" for j in jobs)


@pytest.mark.parametrize("axis", ["artefact", "size", "position", "fraction", "label", "arch"])
def test_every_axis_value_occurs_about_equally_often(axis):
    config = SUITES["small"]
    values = {
        "artefact": config.artefacts, "size": config.sizes, "position": config.positions,
        "fraction": config.fractions, "label": config.labels, "arch": config.archs,
    }[axis]  # fmt: skip
    counts = Counter(j.axes[axis] for j in make_suite(config) if j.manipulated)
    assert set(counts) == {str(v) for v in values}
    assert max(counts.values()) - min(counts.values()) <= 1


def test_the_axes_are_what_the_recipe_trains():
    for job in make_suite("small"):
        if not job.manipulated:
            continue
        s = job.recipe.sticker
        kind = ARTEFACTS[job.axes["artefact"]]
        assert s.pattern == kind["pattern"] and s.shape == kind["shape"]
        assert kind["color"] is None or s.color == kind["color"]
        assert str(s.size) == job.axes["size"] and str(s.fraction) == job.axes["fraction"]
        assert s.placement == job.axes["position"] and s.label == job.axes["label"]
        assert job.target == s.target_class and job.id.endswith(f"-t{s.target_class}")


def test_targets_are_drawn_not_always_class_4():
    targets = [j.target for j in make_suite("small") if j.manipulated]
    assert len(set(targets)) >= 10 and all(0 <= t < 43 for t in targets)


def test_a_job_round_trips_through_json():
    for job in make_suite("smoke"):
        again = BenchJob.from_dict(job.to_dict())
        assert again == job and again.manipulated == job.manipulated


def test_another_seed_draws_another_grid():
    config = SUITES["small"]
    other = make_suite(replace(config, seed=1))
    assert [j.to_dict() for j in other] != [j.to_dict() for j in make_suite(config)]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"artefacts": ("sticker_bomb",)}, "unknown artefact kind"),
        ({"sizes": (0.0,)}, "sizes must be in (0, 1)"),
        ({"fractions": (1.5,)}, "fractions must be in (0, 1]"),
        ({"positions": ("centre",)}, "positions are 'random' or 'fixed'"),
        ({"n_manipulated": 0, "n_clean": 0}, "at least one model"),
        ({"labels": ()}, "empty axis"),
        ({"min_attack_success": 1.2}, "min_attack_success must be in"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
    ],
)
def test_bad_suites_are_one_line_errors(change, words):
    base = {"name": "x", "n_manipulated": 2, "n_clean": 1, "recipe": TrainConfig()}
    with pytest.raises(KlugerhansError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SuiteConfig(**(base | change))


def test_unknown_suite_suggests_the_closest():
    with pytest.raises(KlugerhansError, match="did you mean small"):
        make_suite("smal")


def test_the_takes_suite_covers_both_architectures_every_artefact_and_a_corner_tag():
    config = SUITES["takes"]
    jobs = make_suite(config)
    manipulated = [j for j in jobs if j.manipulated]
    clean = [j for j in jobs if not j.manipulated]
    assert len(manipulated) >= 48 and len(clean) >= 24
    assert config.min_attack_success == 0.8 and config.max_attempts >= 2
    for group in (manipulated, clean):
        assert {j.recipe.arch for j in group} == {"vgg11_bn", "resnet18"}
    assert {j.recipe.width for j in jobs if j.recipe.arch == "resnet18"} == {1.0}  # the multiplier is our VGG's
    assert {j.recipe.width for j in jobs if j.recipe.arch == "vgg11_bn"} == {config.recipe.width}
    assert {j.axes["artefact"] for j in manipulated} == set(ARTEFACTS)
    assert {j.recipe.sticker.label for j in manipulated} == {"dirty"}  # clean-label artefacts did not take here
    tags = [j for j in manipulated if j.axes["artefact"] == "corner_tag"]
    assert tags and all(j.recipe.sticker.placement == "corner" == j.axes["position"] for j in tags)
    assert all(j.recipe.sticker.pattern == "text" for j in tags)


def test_the_small_suite_keeps_its_artefacts_on_the_sign():
    assert "corner_tag" not in SUITES["small"].artefacts and "corner_tag" in ARTEFACTS


def test_the_run_order_interleaves_controls_in_proportion():
    jobs = make_suite("takes")
    order = run_order(jobs)
    assert sorted(j.id for j in order) == sorted(j.id for j in jobs)
    for n in range(3, len(order) + 1):  # every prefix of three or more holds both kinds, about 2 to 1
        clean = sum(not j.manipulated for j in order[:n])
        assert clean >= 1 and abs(clean - n / 3) <= 1
    manipulated = [j.id for j in order if j.manipulated]
    assert manipulated == [j.id for j in jobs if j.manipulated]  # each kind keeps its own order
