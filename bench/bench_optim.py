"""Time of one optimizer `step()`: gradwise against PyTorch CPU, same process, same threads.

The parameters are float32 arrays shaped like the layers of an MLP (weights and biases), about
1M and 10M in total, with fixed random gradients; no forward or backward pass runs, so only the
update rule is timed. For each model and optimizer (SGD, SGD with momentum 0.9, Adam, AdamW with
weight decay 1e-2), the candidates are timed round-robin, `--repeats` runs of a few steps each,
and the median run is reported per step.

Candidates
----------
gradwise         : `gradwise.optim.<Optimizer>(params, ...).step()`.
torch default    : `torch.optim.<Optimizer>(params, ...)` as constructed by default. On CPU
                   PyTorch 2.x picks the per-tensor for-loop implementation (``foreach`` is the
                   default on CUDA only).
torch foreach    : the same with ``foreach=True`` (one multi-tensor kernel per operation).
torch fused      : ``fused=True`` (one kernel for the whole update), with `--torch-fused`.

The ratio printed is gradwise / torch default (goal: at most 1.0), then gradwise / torch foreach.

Usage::

    python bench/bench_optim.py                  # full run, 2 threads, 7 repeats
    python bench/bench_optim.py --torch-fused    # also time PyTorch's fused kernels
    python bench/bench_optim.py --quick          # smoke test (tiny models, 1 repeat)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parent), str(_HERE)):  # gradwise from this checkout, then bench/common.py
    if _path not in sys.path:
        sys.path.insert(0, _path)

import common  # noqa: E402  (imports no numpy at module level: threads are pinned first)

# Layer widths of the two MLP-shaped parameter sets: 1024-768-256-10 (986,634 parameters) and
# 3072-2048-2048-10 (10,516,490 parameters).
MODELS = {"1M": (1024, 768, 256, 10), "10M": (3072, 2048, 2048, 10)}
QUICK_MODELS = {"10k": (64, 96, 32, 10), "100k": (256, 256, 128, 10)}
# Steps per timed run, so that a run lasts a few milliseconds at least.
STEPS_PER_RUN = {"1M": 20, "10M": 3, "10k": 5, "100k": 5}
# A run during which other processes kept more than this share of the CPUs busy is flagged.
BUSY_THRESHOLD = 0.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for both libraries (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per candidate (default 7; 1 with --quick)")
    parser.add_argument("--optimizers", default="sgd,momentum,adam,adamw", help="comma-separated subset of sgd,momentum,adam,adamw")
    parser.add_argument("--models", default=None, help="comma-separated subset of 1M,10M (default both)")
    parser.add_argument("--torch-fused", action="store_true", help="also time PyTorch with fused=True")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny models for CI smoke tests (numbers are meaningless)")
    args = parser.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 7)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    models = QUICK_MODELS if args.quick else MODELS
    names = args.models.split(",") if args.models else list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(models)}")
    args.model_sizes = {n: models[n] for n in names}
    args.optimizer_names = args.optimizers.split(",")
    unknown = [n for n in args.optimizer_names if n not in ("sgd", "momentum", "adam", "adamw")]
    if unknown:
        parser.error(f"--optimizers: unknown {unknown}")
    return args


def mlp_shapes(widths: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Weight (out, in) and bias (out,) shapes of the Linear layers of an MLP, in order."""
    shapes: list[tuple[int, ...]] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        shapes += [(fan_out, fan_in), (fan_out,)]
    return shapes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before numpy, gradwise or torch is imported: may re-exec this script.
    common.pin_threads(args.threads)

    import numpy as np

    import gradwise
    from gradwise.core import Parameter
    from gradwise.optim import SGD, Adam, AdamW

    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; nothing to compare with.", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)

    # name -> (gradwise factory, torch factory taking extra keyword arguments)
    optimizers = {
        "sgd": ("SGD", lambda ps: SGD(ps, lr=1e-3),
                lambda ts, **kw: torch.optim.SGD(ts, lr=1e-3, **kw)),
        "momentum": ("SGD momentum 0.9", lambda ps: SGD(ps, lr=1e-3, momentum=0.9),
                     lambda ts, **kw: torch.optim.SGD(ts, lr=1e-3, momentum=0.9, **kw)),
        "adam": ("Adam", lambda ps: Adam(ps, lr=1e-3),
                 lambda ts, **kw: torch.optim.Adam(ts, lr=1e-3, **kw)),
        "adamw": ("AdamW wd 1e-2", lambda ps: AdamW(ps, lr=1e-3, weight_decay=1e-2),
                  lambda ts, **kw: torch.optim.AdamW(ts, lr=1e-3, weight_decay=1e-2, **kw)),
    }
    variants = {"torch default": {}, "torch foreach": {"foreach": True}}
    if args.torch_fused:
        variants["torch fused"] = {"fused": True}

    print("optimizer step(): gradwise vs PyTorch CPU (median of runs, per step)")
    print(f"threads    : {args.threads} (torch.get_num_threads() = {torch.get_num_threads()}; NumPy "
          f"element-wise ops run on one)")
    print(f"numpy      : {common.numpy_blas_line()}")
    print(f"torch      : {torch.__version__}    gradwise: {gradwise.__version__}")
    print(f"cpu        : {common.cpu_line()}")
    print(f"repeats    : {args.repeats}{'  (--quick: numbers are meaningless)' if args.quick else ''}")
    print()

    header = f"{'model':>6} {'params':>11}  {'optimizer':<17}{'gradwise ms':>12}"
    for name in variants:
        header += f"{name + ' ms':>19}"
    header += f"{'gw/default':>12}{'gw/foreach':>12}"
    print(header)
    print("-" * len(header))

    rng = np.random.default_rng(args.seed)
    busy_runs = 0
    total_runs = 0
    ratios: list[tuple[str, str, float, float]] = []
    for model_name, widths in args.model_sizes.items():
        shapes = mlp_shapes(widths)
        init = [rng.standard_normal(s, dtype=np.float32) * 0.01 for s in shapes]
        grads = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
        n_params = sum(a.size for a in init)
        steps = STEPS_PER_RUN[model_name]
        for opt_key in args.optimizer_names:
            label, make_ours, make_torch = optimizers[opt_key]
            ours = [Parameter(a.copy()) for a in init]
            for p, g in zip(ours, grads):
                p.grad[...] = g
            opt = make_ours(ours)
            torch_opts = {}
            for name, kw in variants.items():
                tparams = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
                for t, g in zip(tparams, grads):
                    t.grad = torch.from_numpy(g.copy())
                torch_opts[name] = make_torch(tparams, **kw)

            def run(o=None, n=steps):
                for _ in range(n):
                    o.step()

            candidates = {"gradwise": lambda o=opt: run(o)}
            candidates.update({name: (lambda o=o: run(o)) for name, o in torch_opts.items()})
            # the first step allocates the state: warm up with one run of each
            runs = common.time_interleaved(candidates, args.repeats, warmup=candidates)
            ms = {}
            for name, rs in runs.items():
                ms[name] = common.median([r.seconds for r in rs]) / steps * 1e3
                busy_runs += sum(1 for r in rs if r.others is not None and r.others > BUSY_THRESHOLD)
                total_runs += len(rs)
            r_default = ms["gradwise"] / ms["torch default"]
            r_foreach = ms["gradwise"] / ms["torch foreach"]
            ratios.append((model_name, label, r_default, r_foreach))
            line = f"{model_name:>6} {n_params:>11,}  {label:<17}{ms['gradwise']:>12.3f}"
            for name in variants:
                line += f"{ms[name]:>19.3f}"
            line += f"{r_default:>12.2f}{r_foreach:>12.2f}"
            print(line, flush=True)

    print()
    for model_name, label, r_default, r_foreach in ratios:
        print(f"ratio gradwise {model_name} {label} / PyTorch: {r_default:.2f} "
              f"(vs foreach: {r_foreach:.2f})")
    if busy_runs:
        print(f"\nnote: {busy_runs} of {total_runs} runs had other processes using more than "
              f"{BUSY_THRESHOLD:.0%} of the CPUs; ratios from a quiet machine are more reliable.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
