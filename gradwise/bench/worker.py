"""The worker process of `gradwise bench`: runs the cases in this process and writes their JSON.

Started by `runner.run_worker` with the thread variables already in the environment; it checks
them first (`machine.check_threads`) so that a worker started by hand with other settings fails
instead of timing something else.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from gradwise.bench import machine
from gradwise.bench.cases import CASES, load
from gradwise.bench.context import Context
from gradwise.bench.timing import BUSY_THRESHOLD, steadiness_probe, time_run

SUBPROCESS_CASES = ("import", "peak-rss")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gradwise.bench --worker")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--case", action="append", dest="cases", choices=list(CASES), required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-peers", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    machine.check_threads(args.threads)
    ctx = Context.create(args.quick, args.repeats, args.threads, args.seed, no_peers=args.no_peers)
    out: dict[str, Any] = {"label": args.label, "cases": [], "errors": {}, "case_seconds": {}}
    busy: list[float] = []
    out["probes"] = []
    for i, name in enumerate(args.cases, 1):
        print(f"  [{i}/{len(args.cases)}] {name} ...", end="", flush=True, file=sys.stderr)
        out["probes"].append(steadiness_probe(size=128 if args.quick else 384))
        fn = load(name)
        holder: list[Any] = []
        try:
            run = time_run(lambda: holder.append(fn(ctx)))
        except Exception:  # noqa: BLE001 -- one broken case must not hide the others' results
            out["errors"][name] = traceback.format_exc()
            print(" FAILED", file=sys.stderr, flush=True)
            continue
        out["cases"].append(holder[0].to_dict())
        out["case_seconds"][name] = run.seconds
        # The process cases run child interpreters, which count as "other processes".
        if run.others is not None and name not in SUBPROCESS_CASES:
            busy.append(run.others)
        print(f" {run.seconds:.1f} s", file=sys.stderr, flush=True)
    out["machine"] = machine.describe(args.threads, ctx.torch)  # after every library has loaded
    out["sgemm_gflops"] = ctx.sgemm()
    out["busy_summary"] = (f"max {max(busy):.0%}, mean {sum(busy) / len(busy):.0%} per case "
                           f"(runs above {BUSY_THRESHOLD:.0%} are marked *)" if busy else "unknown")
    Path(args.out).write_text(json.dumps(out))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
