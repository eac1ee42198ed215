"""A job's ``result.json`` and a suite's ``bench.json`` as typed records: files written before read back unchanged.

The fixtures are real results cut down to three classes: ``result.json`` a manipulated model as written today
(retried once, audit and STRIP, localisation, a repair, a missing number or two), ``result_before_retries.json`` a
clean control as written before retries and timed detectors (no ``run``, ``attempts``, ``took``; an audit without
``seconds``, ``probe``, ``by_probe``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from klugerhans.bench.grid import SUITES
from klugerhans.bench.results import JobResult
from klugerhans.bench.run import PRIMARY, RunOptions, job_dir, load_result, run_job
from klugerhans.bench.summary import BenchSummary, summarize_suite, write_bench
from klugerhans.errors import KlugerhansError

FIXTURES = Path(__file__).parent / "fixtures"
FILES = sorted(FIXTURES.glob("result*.json"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_result_file_reads_and_writes_back_as_it_was(path):
    text = path.read_text()
    data = json.loads(text)
    result = JobResult.from_json(data)
    assert result.to_json() == data
    assert json.dumps(result.to_json(), indent=1) + "\n" == text  # the same bytes, keys in the same order


def test_a_result_reads_as_typed_fields():
    new = JobResult.from_json(json.loads((FIXTURES / "result.json").read_text()))
    old = JobResult.from_json(json.loads((FIXTURES / "result_before_retries.json").read_text()))
    assert new.target == 2 and new.counts and new.attempts == (0.41, 0.9957142857142857)
    assert new.run_dir(Path("job")) == Path("job", "run-2") and old.run_dir(Path("job")) == Path("job", "run")
    assert old.took is None and old.counts  # written before retries: it counts
    audit, strip = new.detectors[PRIMARY], new.detectors["strip"]
    assert set(audit.scores) == {0, 1, 2} and audit.top_class == 2 and audit.probe is not None
    assert math.isnan(strip.scores[1]) and strip.note and strip.order is None and strip.top_class is None
    assert old.detectors[PRIMARY].seconds is None and old.detectors[PRIMARY].by_probe is None
    assert math.isnan(new.evaluation.per_class_accuracy[1])
    assert new.localisation is not None and new.localisation.n == 32
    assert set(new.localisation.by_composite) == {"epsilon_plus", "epsilon_plus_flat"}
    assert new.fix is not None and new.fix.class_id == 2 and math.isnan(new.fix.after.clean_target_accuracy)
    # the recipe as trained, old run options and all, becomes the job
    assert new.job.id == new.id and new.job.target == 2 and new.job.recipe.seed == new.recipe["seed"]
    assert old.job.target is None and not old.job.manipulated


def test_a_result_without_a_required_key_is_a_one_line_error():
    data = json.loads((FIXTURES / "result.json").read_text())
    del data["evaluation"]
    with pytest.raises(KlugerhansError, match=r"JobResult needs the keys \['evaluation'\]"):
        JobResult.from_json(data)
    with pytest.raises(KlugerhansError, match="JSON object"):
        JobResult.from_json([])  # type: ignore[arg-type]


@pytest.fixture
def suite_dir(tmp_path) -> tuple[Path, list]:
    jobs = []
    for path in FILES:
        job = JobResult.from_json(json.loads(path.read_text())).job
        (job_dir(tmp_path, job)).mkdir(parents=True)
        shutil.copy(path, job_dir(tmp_path, job) / "result.json")
        jobs.append(job)
    return tmp_path, jobs


def test_a_finished_job_is_returned_as_it_was_and_not_written(suite_dir):
    out, jobs = suite_dir
    for job in jobs:
        path = job_dir(out, job) / "result.json"
        before = path.stat().st_mtime_ns
        result = run_job(job, SUITES["smoke"], RunOptions(out=str(out), device="cpu", progress=False))
        assert result == load_result(out, job) and result.to_json() == json.loads(path.read_text())
        assert path.stat().st_mtime_ns == before


def test_the_summary_of_the_fixtures_reads_back_and_is_what_bench_json_holds(suite_dir):
    out, jobs = suite_dir
    summary = summarize_suite("fixtures", jobs, out)
    assert (summary.n_jobs, summary.n_finished, summary.n_manipulated, summary.n_clean) == (2, 2, 1, 1)
    assert summary.partial_detectors == ("strip",)  # STRIP ran on the manipulated model only
    assert summary.fix.n == 1 and math.isnan(summary.fix.after.clean_target_accuracy)
    clean = JobResult.from_json(json.loads((FIXTURES / "result_before_retries.json").read_text()))
    assert summary.thresholds[PRIMARY].clean_max == max(clean.detectors[PRIMARY].scores.values())
    data = summary.to_json()
    assert data["fix"]["after"]["clean_target_accuracy"] is None  # NaN is null in JSON
    json.dumps(data, allow_nan=False)
    assert BenchSummary.from_json(data) == BenchSummary.from_json(json.loads(json.dumps(data)))
    assert BenchSummary.from_json(data).to_json() == data
    write_bench(summary, out)
    assert json.loads((out / "bench.json").read_text()) == data
