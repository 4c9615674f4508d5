"""One training epoch of a 784-512-512-10 ReLU MLP: gradwise against PyTorch CPU, same process.

Both libraries train the same network (same initial weights), on the same synthetic data in the
same order (no shuffling), with batch 128, Adam (lr 1e-3), softmax cross-entropy and float32, on
the same number of threads. Each candidate is warmed up on a few batches, then the candidates
are timed round-robin for `--repeats` epochs and the median epoch is reported.

Candidates
----------
gradwise, Trainer    : `Trainer(model, loss, Adam, metrics=(), progress=False).fit(loader)`,
                       what a user of the library gets.
gradwise, hand loop  : forward / loss / zero_grad / backward / step written out; the difference
                       to the Trainer is the Trainer's overhead. Also gives the time per phase.
PyTorch, default Adam: the standard loop (zero_grad, forward, loss, backward, step, loss.item())
                       with `torch.optim.Adam(lr=1e-3)` as constructed by default.

Usage::

    python bench/bench_mlp.py                     # full run, 2 threads, 3 repeats
    python bench/bench_mlp.py --threads 1 --repeats 5
    python bench/bench_mlp.py --unset-openblas-env  # measure without OPENBLAS_CORETYPE/_L2_SIZE
    python bench/bench_mlp.py --quick             # smoke test (1,024 samples, 1 repeat)

The thread count is set through OMP/OPENBLAS/MKL_NUM_THREADS, so the script re-executes itself
with those variables when the environment does not already have them (see `common.pin_threads`).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parent), str(_HERE)):  # gradwise from this checkout, then bench/common.py
    if _path not in sys.path:
        sys.path.insert(0, _path)

import common  # imports no numpy at module level: threads are pinned first

SIZES = (784, 512, 512, 10)
# A run during which other processes kept more than this share of the CPUs busy is flagged.
BUSY_THRESHOLD = 0.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for both libraries (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs per candidate (default 3; 1 with --quick)")
    parser.add_argument("--samples", type=int, default=None, help="samples per epoch (default 60000; 1024 with --quick)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup-batches", type=int, default=None, help="warm-up batches per candidate (default 5; 1 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run for CI smoke tests (numbers are meaningless)")
    parser.add_argument(
        "--unset-openblas-env",
        action="store_true",
        help="re-run without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (OpenBLAS then detects the CPU itself)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each round of epochs, wait (at most SECONDS) until other processes leave the CPUs idle",
    )
    parser.add_argument(
        "--torch-adam-variants",
        action="store_true",
        help="also time PyTorch with Adam(foreach=True) and Adam(fused=True)",
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    args.samples = args.samples if args.samples is not None else (1024 if args.quick else 60_000)
    args.warmup_batches = args.warmup_batches if args.warmup_batches is not None else (1 if args.quick else 5)
    for name in ("repeats", "samples", "batch_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def epoch_flops(n: int) -> float:
    """FLOPs of the matrix products of one epoch: forward, weight gradients, input gradients
    except for the first layer (whose input gradient no one needs)."""
    macs = [a * b for a, b in itertools.pairwise(SIZES)]
    return 2.0 * n * (2 * sum(macs) + sum(macs[1:]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before numpy, gradwise or torch is imported: may re-exec this script.
    original_openblas_env = common.pin_threads(args.threads, args.unset_openblas_env)

    import numpy as np

    import gradwise
    from gradwise.core import Layer, Sequential
    from gradwise.layers import Linear, ReLU
    from gradwise.losses import SoftmaxCrossEntropy
    from gradwise.optim import Adam

    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; nothing to compare with.", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)

    n, bs = args.samples, args.batch_size
    data_rng = np.random.default_rng(args.seed)
    x = data_rng.standard_normal((n, SIZES[0]), dtype=np.float32)
    y = data_rng.integers(0, SIZES[-1], size=n, dtype=np.int64)
    n_warm = min(n, args.warmup_batches * bs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)  # shared memory, no copy

    # ------------------------------------------------------------------ models (same weights)
    def gradwise_model() -> Sequential:
        rng = np.random.default_rng(args.seed + 1)
        layers: list[Layer] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(SIZES)):
            layers.append(Linear(fan_in, fan_out, rng=rng))
            if i < len(SIZES) - 2:
                layers.append(ReLU())
        return Sequential(*layers)

    def torch_model() -> torch.nn.Module:
        layers: list[torch.nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(SIZES)):
            layers.append(torch.nn.Linear(fan_in, fan_out))
            if i < len(SIZES) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in gradwise_model().state_dict().items()})
        return model

    # ------------------------------------------------------------------ epoch functions
    hand_phases: list[dict[str, float]] = []

    def gradwise_hand_epoch(model, loss_fn, opt, xs, ys, record: bool) -> None:
        # Phases are timed with bare perf_counter calls: ~0.1 us each, 6 per batch.
        clock = time.perf_counter
        fwd = loss_t = zero = bwd = step = 0.0
        t_start = clock()
        for start in range(0, len(xs), bs):
            xb, yb = xs[start : start + bs], ys[start : start + bs]
            t0 = clock()
            scores = model.forward(xb)
            t1 = clock()
            loss_fn.forward(scores, yb)
            t2 = clock()
            opt.zero_grad()
            t3 = clock()
            model.backward(loss_fn.backward())
            t4 = clock()
            opt.step()
            t5 = clock()
            fwd += t1 - t0
            loss_t += t2 - t1
            zero += t3 - t2
            bwd += t4 - t3
            step += t5 - t4
        total = clock() - t_start
        if record:
            hand_phases.append(
                {
                    "forward (3 Linear + 2 ReLU)": fwd,
                    "loss (softmax CE, value + grad)": loss_t,
                    "zero_grad": zero,
                    "backward (3 Linear + 2 ReLU)": bwd,
                    "optimizer step (Adam)": step,
                    "loop, slicing, timers": total - (fwd + loss_t + zero + bwd + step),
                }
            )

    def torch_epoch(model, loss_fn, opt, xs, ys) -> None:
        common.torch_epoch(model, loss_fn, opt, xs, ys, bs)

    candidates: dict = {}
    warmups: dict = {}
    notes: list[str] = []

    # (a) gradwise with the Trainer, if the Trainer and DataLoader are there and work.
    name_trainer = "gradwise, Trainer"
    try:
        from gradwise.data.loader import DataLoader
        from gradwise.training.trainer import Trainer

        model_a = gradwise_model()
        trainer = Trainer(model_a, SoftmaxCrossEntropy(), Adam(model_a.parameters(), lr=1e-3), metrics=(), progress=False)
        loader_rng = np.random.default_rng(args.seed + 2)
        loader = DataLoader(x, y, batch_size=bs, shuffle=False, rng=loader_rng)
        warm_loader = DataLoader(x[:n_warm], y[:n_warm], batch_size=bs, shuffle=False, rng=loader_rng)
        warmups[name_trainer] = lambda: trainer.fit(warm_loader, epochs=1)
        candidates[name_trainer] = lambda: trainer.fit(loader, epochs=1)
        warmups[name_trainer]()  # fail here, not in the middle of the timed runs
    except Exception as err:  # noqa: BLE001 -- whatever breaks in the Trainer, report it and time the rest
        candidates.pop(name_trainer, None)
        warmups.pop(name_trainer, None)
        notes.append(f"{name_trainer}: not measured ({type(err).__name__}: {err})")

    # (b) gradwise hand loop.
    model_b, loss_b = gradwise_model(), SoftmaxCrossEntropy()
    opt_b = Adam(model_b.parameters(), lr=1e-3)
    name_hand = "gradwise, hand loop"
    warmups[name_hand] = lambda: gradwise_hand_epoch(model_b, loss_b, opt_b, x[:n_warm], y[:n_warm], False)
    candidates[name_hand] = lambda: gradwise_hand_epoch(model_b, loss_b, opt_b, x, y, True)

    # (c) PyTorch, default Adam (and optionally the explicit variants).
    torch_setups: dict[str, dict[str, Any]] = {"PyTorch, default Adam": {}}
    if args.torch_adam_variants:
        torch_setups["PyTorch, Adam(foreach=True)"] = {"foreach": True}
        torch_setups["PyTorch, Adam(fused=True)"] = {"fused": True}
    first_torch = next(iter(torch_setups))
    for name, kwargs in torch_setups.items():
        model_t = torch_model()
        opt_t = torch.optim.Adam(model_t.parameters(), lr=1e-3, **kwargs)
        loss_t = torch.nn.CrossEntropyLoss()
        warmups[name] = lambda m=model_t, o=opt_t, lf=loss_t: torch_epoch(m, lf, o, xt[:n_warm], yt[:n_warm])
        candidates[name] = lambda m=model_t, o=opt_t, lf=loss_t: torch_epoch(m, lf, o, xt, yt)

    # Same network, same data: the first-batch losses must agree before anything is timed.
    loss0_g = SoftmaxCrossEntropy().forward(gradwise_model().forward(x[:bs]), y[:bs])
    with torch.no_grad():
        loss0_t = float(torch.nn.functional.cross_entropy(torch_model()(xt[:bs]), yt[:bs]))

    # sgemm rate: a check of the BLAS kernel (the OpenBLAS variables change it); before and after.
    gemm_gflops = common.sgemm_gflops(budget_s=0.1 if args.quick else 0.3)

    runs = common.time_interleaved(candidates, args.repeats, warmup=warmups, wait_quiet_s=args.wait_quiet)
    gemm_gflops = max(gemm_gflops, common.sgemm_gflops(budget_s=0.1 if args.quick else 0.3))

    # ------------------------------------------------------------------ report
    n_batches = -(-n // bs)
    print(f"MLP {'-'.join(map(str, SIZES))} ReLU, float32, batch {bs}, Adam lr 1e-3, softmax CE, "
          f"{n:,} samples ({n_batches} batches, no shuffle), median of {args.repeats} epoch(s)"
          + ("  [--quick: smoke test, not a measurement]" if args.quick else ""))
    common.print_machine_header(args.threads, torch, original_openblas_env)
    print(f"sgemm 1024^3: {gemm_gflops:.0f} GFLOP/s (numpy, {args.threads} threads, best call before/after the runs)")
    print(f"versions   : gradwise {gradwise.__version__}, torch {torch.__version__}")
    print(f"torch Adam : default resolves to {_torch_adam_impl(torch)} on CPU")
    agree = "same network" if abs(loss0_g - loss0_t) <= 1e-4 * abs(loss0_t) else "MISMATCH: not the same network"
    print(f"check      : first-batch loss gradwise {loss0_g:.6f}, torch {loss0_t:.6f} ({agree})")
    if args.wait_quiet:
        notes.append(f"each round of epochs waited (at most {args.wait_quiet:g} s) for other processes to go idle")
    for note in notes:
        print(f"note       : {note}")
    print()

    secs = {name: [r.seconds for r in rs] for name, rs in runs.items()}
    # Runs during which other processes were busy are flagged; their median is shown apart.
    quiet = {name: [r.seconds for r in rs if not _disturbed(r)] for name, rs in runs.items()}
    ref = common.median(secs[first_torch])
    width = max(len(k) for k in runs)
    print(f"{'candidate':<{width}}  {'epoch (s)':>9}  {'min (s)':>7}  {'quiet med':>9}  {'ms/batch':>8}  "
          f"{'vs PyTorch':>10}  runs (s)")
    for name, rs in runs.items():
        med = common.median(secs[name])
        quiet_med = f"{common.median(quiet[name]):9.3f}" if quiet[name] else f"{'-':>9}"
        marks = " ".join(f"{r.seconds:.3f}{'*' if _disturbed(r) else ''}" for r in rs)
        print(f"{name:<{width}}  {med:9.3f}  {min(secs[name]):7.3f}  {quiet_med}  {1e3 * med / n_batches:8.2f}  "
              f"{med / ref:9.2f}x  {marks}")
    any_busy = any(_disturbed(r) for rs in runs.values() for r in rs)
    all_quiet_some = all(quiet.values())
    if any_busy:
        print(f"  * other processes kept more than {BUSY_THRESHOLD:.0%} of the CPUs busy during that run; "
              f"'quiet med' leaves such runs out. Rerun with more --repeats on a quieter machine.")
    print()
    for name in (name_trainer, name_hand):
        if name in runs:
            # Rounds are interleaved, so the ratio within each round cancels slow drifts of the machine.
            per_round = [a / b for a, b in zip(secs[name], secs[first_torch])]
            extra = [f"per round {min(per_round):.2f}-{max(per_round):.2f}"] if len(per_round) > 1 else []
            if any_busy and all_quiet_some:
                extra.append(f"quiet runs only {common.median(quiet[name]) / common.median(quiet[first_torch]):.2f}")
            print(f"ratio {name.replace('gradwise, ', 'gradwise ')} / PyTorch: {common.median(secs[name]) / ref:.2f}"
                  f"  (< 1: gradwise is faster{'; ' if extra else ''}{', '.join(extra)})")
    if name_trainer in runs:
        over = common.median(secs[name_trainer]) - common.median(secs[name_hand])
        print(f"Trainer overhead over the hand loop: {over:+.3f} s/epoch ({1e3 * over / n_batches:+.2f} ms/batch)")
    floor = epoch_flops(n) / (gemm_gflops * 1e9)
    print(f"matrix-product floor at the sgemm rate above: {floor:.3f} s/epoch ({epoch_flops(n) / 1e9:.0f} GFLOP)")
    print()

    # The breakdown of the median epoch, among the quiet ones when there are some.
    hand_quiet = [i for i, r in enumerate(runs[name_hand]) if not _disturbed(r)]
    pool = hand_quiet or list(range(len(runs[name_hand])))
    pick = pool[common.median_index([secs[name_hand][i] for i in pool])]
    phases = hand_phases[pick]
    total = sum(phases.values())
    which = "median quiet epoch" if any_busy and hand_quiet else "median epoch"
    print(f"where the time goes in {name_hand} (run {pick + 1}, the {which}, {total:.3f} s):")
    for phase, sec in phases.items():
        print(f"  {phase:<34} {sec:7.3f} s  {100 * sec / total:5.1f} %  {1e3 * sec / n_batches:6.3f} ms/batch")
    return 0


def _disturbed(run: common.Run) -> bool:
    return run.others is not None and run.others > BUSY_THRESHOLD


def _torch_adam_impl(torch) -> str:
    """Which Adam implementation torch picks by default for CPU float32 parameters."""
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        params = [torch.zeros(2, requires_grad=True)]
        fused, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    except (ImportError, AttributeError, TypeError):  # a private function: it may move or change
        return "unknown"
    return "fused" if fused else ("foreach" if foreach else "the for-loop (single-tensor) implementation")


if __name__ == "__main__":
    sys.exit(main())
