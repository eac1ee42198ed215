"""``klugerhans bench``: train a suite of manipulated and clean models, audit each, set the audit against baselines."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from klugerhans.cli.app import command
from klugerhans.cli.args import add_device_args, add_progress_args, open_unit_interval
from klugerhans.defaults import DEFAULT_FPR
from klugerhans.errors import KlugerhansError
from klugerhans.io import to_jsonable


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", default="small", help="smoke (2 models), small (36, CPU), full (72, GTSRB, GPU)")
    p.add_argument("--out", required=True, help="suite folder: jobs/<id>/, bench.json, report.html")
    p.add_argument("--data-dir", default=None, help="GTSRB folder for suites on real data")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="print the suite's jobs (one JSON object per line)")
    what.add_argument("--job", action="append", default=None, metavar="ID", help="run only this job (repeatable)")
    what.add_argument("--summarize", action="store_true", help="only write bench.json and the report from results")
    p.add_argument(
        "--baselines",
        default=None,
        help="comma-separated baseline detectors ('' for none; default: all registered); a finished job gets those "
        "it lacks",
    )
    p.add_argument("--no-fix", action="store_true", help="skip the repair of each manipulated model")
    p.add_argument(
        "--rescore",
        action="store_true",
        help="finished jobs: run klugerhans' audit again on the trained models (keeps baselines and training)",
    )
    p.add_argument(
        "--fpr",
        type=open_unit_interval,
        default=DEFAULT_FPR,
        help=f"false-positive rate the thresholds aim at ({DEFAULT_FPR})",
    )
    add_device_args(p)
    add_progress_args(p)


@command("bench", "detection measured across a suite of manipulated and clean models, against baselines", _bench_args)
def _bench(args: argparse.Namespace) -> int:
    from klugerhans.bench.baselines import BASELINES
    from klugerhans.bench.grid import SUITES, make_suite, run_order
    from klugerhans.bench.run import PRIMARY, RunOptions, run_job
    from klugerhans.bench.summary import summarize_suite, write_bench

    suite = SUITES.get_or_raise(args.suite)
    jobs = make_suite(suite)
    if args.data_dir is not None:
        jobs = [replace(j, recipe=replace(j.recipe, data_dir=args.data_dir)) for j in jobs]
    if args.list:
        for job in jobs:
            print(json.dumps(job.to_dict()))
        return 0
    baselines = tuple(sorted(BASELINES)) if args.baselines is None else tuple(b for b in args.baselines.split(",") if b)
    for name in baselines:
        BASELINES.get_or_raise(name)
    options = RunOptions(
        out=args.out,
        device=args.device,
        baselines=baselines,
        fix=not args.no_fix,
        progress=not args.no_progress,
        rescore=args.rescore,
    )
    if not args.summarize:
        chosen = run_order(jobs)
        if args.job:
            ids = {j.id: j for j in jobs}
            unknown = [i for i in args.job if i not in ids]
            if unknown:
                raise KlugerhansError(f"no job {unknown[0]!r} in suite {args.suite!r}; see klugerhans bench --list")
            chosen = [ids[i] for i in args.job]
        for k, job in enumerate(chosen, 1):
            result = run_job(job, suite, options)
            flagged = list(result.detectors[PRIMARY].flagged)
            print(f"[{k}/{len(chosen)}] {job.id}: target {job.target}, audit flags {flagged}")
        if args.job:
            return 0
    summary = summarize_suite(suite.name, jobs, args.out, args.fpr)
    for path in write_bench(summary, args.out):
        print(f"wrote {path}")
    # the numbers as bench.json holds them (a missing one, NaN, prints as None)
    auroc, fpr, tpr, top1 = (
        to_jsonable(x)
        for x in (summary.auroc, summary.false_positive_rate, summary.true_positive_rate, summary.top1_hit_rate)
    )
    print(
        f"{PRIMARY}: AUROC {auroc}, FPR {fpr}, TPR {tpr}, top-1 hit {top1} "
        f"({summary.n_manipulated} manipulated, {summary.n_clean} clean)"
    )
    return 0
