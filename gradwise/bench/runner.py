"""`gradwise bench`: run the suite in worker processes, one per OpenBLAS environment, and report.

Thread counts and the OpenBLAS tuning variables are read once, when NumPy's BLAS loads, so the
suite never times anything in the process that parses the command line: it starts a worker
(`python -m gradwise.bench --worker ...`) with OMP/OPENBLAS/MKL_NUM_THREADS set, once in the
current environment and, when OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, once more without
them, then prints each case's details, a summary table per environment and the ratios side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gradwise.bench import machine
from gradwise.bench.cases import CASES
from gradwise.bench.report import CaseResult, format_case, format_comparison, format_summary
from gradwise.bench.timing import steadiness_summary

ENV_CHOICES = ("both", "current", "unset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one round per case: checks that every case runs (numbers mean nothing)")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE (JSON)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for every library (default 2)")
    parser.add_argument("--case", action="append", metavar="NAME", dest="cases",
                        help="run only this case (repeatable; --list shows them)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--repeats", type=int, help="timed rounds per case (default 5; 1 with --quick)")
    parser.add_argument("--openblas-env", choices=ENV_CHOICES, default="both",
                        help="both (default): the current environment and, if OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE "
                        "are set, again without them; current: only as set; unset: only without them")
    parser.add_argument("--no-peers", action="store_true", help="time gradwise alone (do not import PyTorch)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and initial weights")


def add_parser(sub: Any) -> None:
    """The `bench` subcommand of the `gradwise` CLI."""
    bench = sub.add_parser("bench", help="speed suite: gradwise vs PyTorch CPU and scikit-learn, ratios and targets")
    add_arguments(bench)
    bench.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    bench.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> list[str]:
    """The cases to run, in suite order; ValueError naming the bad argument."""
    if args.threads < 1:
        raise ValueError(f"--threads {args.threads} must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats {args.repeats} must be >= 1")
    chosen = args.cases or list(CASES)
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise ValueError(f"--case: unknown {', '.join(unknown)}; choose from {', '.join(CASES)}")
    return [c for c in CASES if c in chosen]


def environments(mode: str, env: dict[str, str] | None = None) -> list[tuple[str, bool]]:
    """(label, unset the OpenBLAS tuning variables?) per worker to start."""
    tuning = machine.openblas_tuning(env)
    if not tuning:
        return [("environment as is (OpenBLAS tuning vars unset)", False)]
    shown = " ".join(f"{k}={v}" for k, v in tuning.items())
    current = (f"as set: {shown}", False)
    unset = ("OpenBLAS tuning vars unset", True)
    return {"both": [current, unset], "current": [current], "unset": [unset]}[mode]


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def run_worker(label: str, unset: bool, cases: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Start one worker, stream its progress, and return its JSON."""
    env = machine.worker_env(args.threads, unset)
    # The workers (and the interpreters they start) import this very gradwise.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="gradwise-bench-") as tmp:
        out = Path(tmp) / "worker.json"
        argv = [sys.executable, "-m", "gradwise.bench", "--worker", "--out", str(out), "--label", label,
                "--threads", str(args.threads), "--seed", str(args.seed)]
        argv += [f"--case={c}" for c in cases]
        if args.quick:
            argv.append("--quick")
        if args.repeats is not None:
            argv += ["--repeats", str(args.repeats)]
        if args.no_peers:
            argv.append("--no-peers")
        print(f"gradwise bench: worker [{label}], {args.threads} thread(s), {len(cases)} case(s)", flush=True)
        code = subprocess.run(argv, env=env, check=False).returncode
        if not out.is_file():
            raise RuntimeError(f"gradwise bench: the worker [{label}] exited with {code} and wrote no results")
        data: dict[str, Any] = json.loads(out.read_text())
    data["exit_code"] = code
    return data


def report(suite: dict[str, Any]) -> list[str]:
    """The text report of a suite's JSON (as `run` writes it)."""
    lines: list[str] = []
    columns: dict[str, list[CaseResult]] = {}
    for env in suite["environments"]:
        m = env["machine"]
        results = [CaseResult.from_dict(c) for c in env["cases"]]
        columns[env["label"]] = results
        lines += ["", f"######## {env['label']}" + ("  [--quick: smoke test, numbers mean nothing]" if suite["quick"] else "")]
        lines.append(f"date       : {m['date']}")
        lines.append(f"machine    : {m['cpu']}")
        lines.append(f"threads    : {m['threads']} (OMP/OPENBLAS/MKL_NUM_THREADS; torch.get_num_threads()="
                     f"{m['torch_threads']})")
        lines.append(f"numpy      : {m['numpy']}")
        lines += [f"BLAS runtime: {b}" for b in m["blas_runtime"]]
        shown = " ".join(f"{k}={v}" for k, v in m["openblas_env"].items()) or "unset"
        lines.append(f"OpenBLAS env: {shown}")
        lines.append(f"sgemm      : {env['sgemm_gflops']:.0f} GFLOP/s (float32 1024^3, best call)")
        lines.append(f"versions   : gradwise {m['gradwise']}, torch {m['torch'] or 'not installed'}")
        lines.append(f"busy       : other processes' CPU share while the suite ran: {env['busy_summary']}")
        steadiness, unsteady = steadiness_summary(env.get("probes", []))
        lines.append(f"steadiness : float32 GEMM probes (384^3; 128^3 with --quick), one before each case: {steadiness}")
        if unsteady:
            lines.append("             UNSTEADY: the machine's speed changed during the suite (other tenants of the "
                         "host?); medians mix fast and slow spells: read the paired ratios, and rerun")
        for result in results:
            lines += [""] + format_case(result)
        for name, error in env["errors"].items():
            lines += ["", f"== {name}: FAILED", *("   " + ln for ln in error.rstrip().splitlines())]
        lines += ["", f"summary [{env['label']}] (ratio = gradwise / peer time, < 1: gradwise is faster; "
                  "targets are reported, never asserted):"]
        lines += format_summary(results)
    if len(columns) > 1:
        lines += ["", "ratios side by side:"] + format_comparison(columns)
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the suite as `args` asks; print the report; exit code 0, or 1 if a case failed."""
    if args.list:
        width = max(map(len, CASES))
        for name, (_, _, desc) in CASES.items():
            print(f"{name:<{width}}  {desc}")
        return 0
    cases = check_args(args)
    envs = environments(args.openblas_env)
    start = time.perf_counter()
    suite: dict[str, Any] = {
        "suite": "gradwise bench", "format": 1, "quick": bool(args.quick), "threads": args.threads,
        "repeats": args.repeats, "cases": cases, "environments": [run_worker(label, unset, cases, args)
                                                                  for label, unset in envs],
    }
    if not machine.openblas_tuning():
        suite["note"] = "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset in this environment: one column"
    suite["seconds"] = time.perf_counter() - start
    print("\n".join(report(suite)))
    if "note" in suite:
        print(f"\nnote: {suite['note']}")
    print(f"\ngradwise bench: {suite['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(suite, indent=1))
        print(f"gradwise bench: wrote {args.json}")
    failed = any(env["errors"] or env["exit_code"] for env in suite["environments"])
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradwise bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ValueError as err:
        print(f"gradwise bench: error: {err}", file=sys.stderr)
        return 2
