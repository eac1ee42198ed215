"""A suite where every shortcut takes: a manipulated model whose artefact did not take is trained again with another
seed, and one that never takes is reported apart from the headline.

Whether a tiny model's artefact takes depends on the machine's kernels, so the attack success that decides is set
here by a stand-in for the evaluation (the real one runs, its flip rate is replaced from a script); the training,
the audit and the summary are real.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import klugerhans.bench.run as bench_run
from klugerhans.bench.grid import SUITES, SuiteConfig, make_suite
from klugerhans.bench.run import RESEED, RunOptions, job_dir, run_job
from klugerhans.bench.summary import summarize_suite


@pytest.fixture(scope="module")
def suite() -> SuiteConfig:
    smoke = SUITES["smoke"]
    recipe = replace(smoke.recipe, per_class=20, epochs=1)
    return replace(smoke, name="takes-test", n_manipulated=2, recipe=recipe, fix_epochs=0, audit_per_class=5,
                   min_attack_success=0.8, max_attempts=2)  # fmt: skip


@pytest.fixture(scope="module")
def finished(suite, tmp_path_factory):
    out = tmp_path_factory.mktemp("takes")
    jobs = make_suite(suite)
    # per manipulated job, the attack success its attempts reach: the first takes at its second training, the
    # second never does
    script = {jobs[0].id: [0.1, 0.9], jobs[1].id: [0.2, 0.3]}
    real = bench_run.evaluate_model
    seen: list[tuple[str, int]] = []

    def evaluate(clf, data, sticker, seed):
        numbers = real(clf, data, sticker, seed=seed)
        for job in jobs[:2]:
            if seed in (job.recipe.seed, job.recipe.seed + RESEED):
                seen.append((job.id, seed))
                flip_rate = script[job.id][len([s for j, s in seen if j == job.id]) - 1]
                numbers = replace(numbers, flip_rate=flip_rate)
        return numbers

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_run, "evaluate_model", evaluate)
        patch.setattr(bench_run, "VARIANTS", {})  # the shipped audit alone: its variants are not what is tested
        options = RunOptions(out=str(out), device="cpu", fix=False, progress=False, n_localise=4)
        results = [run_job(job, suite, options) for job in jobs]
    return out, jobs, results


def test_a_model_whose_artefact_did_not_take_is_trained_again_with_another_seed(finished):
    out, jobs, results = finished
    first = results[0]
    assert first.attempts == (0.1, 0.9) and first.took and first.run == "run-2"
    assert first.job.recipe.seed == jobs[0].recipe.seed + RESEED  # the recipe that was trained
    assert (job_dir(out, jobs[0]) / "run" / "best.safetensors").is_file()  # the first attempt is kept
    assert (job_dir(out, jobs[0]) / "run-2" / "best.safetensors").is_file()
    never = results[1]
    assert never.attempts == (0.2, 0.3) and never.took is False and not never.counts
    control = results[2]
    assert control.attempts == (0.0,) and control.took and control.run == "run"


def test_what_never_took_is_reported_apart_from_the_headline(finished, suite):
    out, jobs, _ = finished
    bench = summarize_suite(suite.name, jobs, out)
    assert bench.n_finished == 3 and bench.n_manipulated == 1 and bench.n_clean == 1
    assert bench.to_json()["not_taken"] == {"n": 1, "attack_success": {jobs[1].id: [0.2, 0.3]}}
    # a finished job is reused as it is: no third training
    again = run_job(jobs[1], suite, RunOptions(out=str(out), device="cpu", fix=False, progress=False))
    assert again.to_json() == json.loads((job_dir(out, jobs[1]) / "result.json").read_text())
