"""One training epoch of two CNNs: gradwise against PyTorch CPU, same process.

(a) the MNIST-1D paper's CNN: Reshape to (N, 1, 40), three Conv1d of 25 channels (kernels 5/3/3,
    stride 2, padding 1) with ReLU, Flatten, Linear 125 -> 10; 4,000 samples, batch 100;
(b) a LeNet-style Conv2d network on 28x28 images: Conv2d 1->6 k5, ReLU, MaxPool 2, Conv2d 6->16 k5,
    ReLU, MaxPool 2, Flatten, Linear 256->120->84->10 with ReLU; 10,000 samples, batch 64.

Both libraries train the same network (gradwise's initial weights loaded into torch), on the same
synthetic data in the same order (no shuffling), with Adam (lr 1e-3), softmax cross-entropy and
float32, on the same number of threads. Each candidate is warmed up on a few batches, then the
candidates are timed round-robin for `--repeats` epochs and the median epoch is reported.

Candidates
----------
gradwise : the loop written out (forward layer by layer, loss, zero_grad, backward layer by layer,
           Adam step), with the time of every layer's forward and backward recorded.
PyTorch  : the standard loop (zero_grad, forward, loss, backward, step, loss.item()) with
           `torch.optim.Adam(lr=1e-3)` as constructed by default.

Usage::

    python bench/bench_cnn.py                    # both models, 2 threads, 3 repeats
    python bench/bench_cnn.py --model lenet --repeats 5
    python bench/bench_cnn.py --threads 1
    python bench/bench_cnn.py --quick            # smoke test (a few batches, 1 repeat)

The thread count is set through OMP/OPENBLAS/MKL_NUM_THREADS, so the script re-executes itself
with those variables when the environment does not already have them (see `common.pin_threads`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parent), str(_HERE)):  # gradwise from this checkout, then bench/common.py
    if _path not in sys.path:
        sys.path.insert(0, _path)

import common  # imports no numpy at module level: threads are pinned first

# A run during which other processes kept more than this share of the CPUs busy is flagged.
BUSY_THRESHOLD = 0.10


@dataclass
class Spec:
    """One benchmarked model: its data shape, sizes and the two builders."""

    name: str
    title: str
    sample_shape: tuple[int, ...]
    samples: int
    quick_samples: int
    batch_size: int
    gradwise: Callable[[Any], Any]  # rng -> gradwise Sequential
    torch: Callable[[], Any]  # () -> torch.nn.Sequential (weights loaded afterwards)


def specs() -> dict[str, Spec]:
    from gradwise.core import Sequential
    from gradwise.layers import (
        Conv1d,
        Conv2d,
        Flatten,
        Linear,
        MaxPool2d,
        ReLU,
        Reshape,
    )

    def mnist1d_gw(rng: Any) -> Sequential:
        return Sequential(
            Reshape((1, 40)),
            Conv1d(1, 25, 5, stride=2, padding=1, rng=rng), ReLU(),
            Conv1d(25, 25, 3, stride=2, padding=1, rng=rng), ReLU(),
            Conv1d(25, 25, 3, stride=2, padding=1, rng=rng), ReLU(),
            Flatten(), Linear(125, 10, rng=rng),
        )

    def mnist1d_torch() -> Any:
        from torch import nn

        return nn.Sequential(
            nn.Unflatten(1, (1, 40)),
            nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(125, 10),
        )

    def lenet_gw(rng: Any) -> Sequential:
        return Sequential(
            Conv2d(1, 6, 5, rng=rng), ReLU(), MaxPool2d(2),
            Conv2d(6, 16, 5, rng=rng), ReLU(), MaxPool2d(2),
            Flatten(),
            Linear(256, 120, rng=rng), ReLU(), Linear(120, 84, rng=rng), ReLU(), Linear(84, 10, rng=rng),
        )

    def lenet_torch() -> Any:
        from torch import nn

        return nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )

    return {
        "mnist1d": Spec("mnist1d", "MNIST-1D CNN (3 x Conv1d 25ch, k 5/3/3, stride 2; Linear 125->10)",
                        (40,), 4000, 400, 100, mnist1d_gw, mnist1d_torch),
        "lenet": Spec("lenet", "LeNet-style CNN on 28x28 (Conv2d 1->6->16 k5, MaxPool 2; Linear 256->120->84->10)",
                      (1, 28, 28), 10_000, 640, 64, lenet_gw, lenet_torch),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("mnist1d", "lenet", "both"), default="both")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for both libraries (default 2)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed epochs per candidate (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--warmup-batches", type=int, default=None, help="warm-up batches per candidate (default 5; 1 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests (numbers are meaningless)")
    parser.add_argument(
        "--unset-openblas-env",
        action="store_true",
        help="re-run without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (OpenBLAS then detects the CPU itself)",
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    args.warmup_batches = args.warmup_batches if args.warmup_batches is not None else (1 if args.quick else 5)
    for name in ("repeats", "threads", "warmup_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def bench_model(spec: Spec, args: argparse.Namespace, torch: Any) -> dict[str, float]:
    """Time one model; print its table, ratio and breakdown. Returns the median epoch times."""
    import numpy as np

    from gradwise.losses import SoftmaxCrossEntropy
    from gradwise.optim import Adam

    n = spec.quick_samples if args.quick else spec.samples
    bs = spec.batch_size
    data_rng = np.random.default_rng(args.seed)
    x = data_rng.standard_normal((n, *spec.sample_shape), dtype=np.float32)
    y = data_rng.integers(0, 10, size=n, dtype=np.int64)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)  # shared memory, no copy
    n_warm = min(n, args.warmup_batches * bs)

    def gradwise_model() -> Any:
        return spec.gradwise(np.random.default_rng(args.seed + 1))

    def torch_model() -> Any:
        model = spec.torch()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in gradwise_model().state_dict().items()})
        return model

    # ------------------------------------------------------------------ epoch functions
    model_g, loss_g = gradwise_model(), SoftmaxCrossEntropy()
    opt_g = Adam(model_g.parameters(), lr=1e-3)
    layers = list(model_g)
    labels = [f"{i} {type(layer).__name__}" for i, layer in enumerate(layers)]
    breakdowns: list[dict[str, float]] = []

    def gradwise_epoch(xs: Any, ys: Any, record: bool) -> None:
        # Bare perf_counter calls around every layer (~0.1 us each); Sequential.forward and
        # .backward are exactly these loops.
        clock = time.perf_counter
        fwd = [0.0] * len(layers)
        bwd = [0.0] * len(layers)
        loss_t = zero = step = 0.0
        t_start = clock()
        for start in range(0, len(xs), bs):
            h, yb = xs[start : start + bs], ys[start : start + bs]
            for i, layer in enumerate(layers):
                t0 = clock()
                h = layer.forward(h)
                fwd[i] += clock() - t0
            t0 = clock()
            loss_g.forward(h, yb)
            g = loss_g.backward()
            t1 = clock()
            opt_g.zero_grad()
            t2 = clock()
            for i in range(len(layers) - 1, -1, -1):
                t0b = clock()
                g = layers[i].backward(g)
                bwd[i] += clock() - t0b
            t3 = clock()
            opt_g.step()
            t4 = clock()
            loss_t += t1 - t0
            zero += t2 - t1
            step += t4 - t3
        total = clock() - t_start
        if record:
            phases = {f"{label} forward": f for label, f in zip(labels, fwd)}
            phases.update({f"{label} backward": b for label, b in zip(labels, bwd)})
            phases["loss (softmax CE, value + grad)"] = loss_t
            phases["zero_grad"] = zero
            phases["optimizer step (Adam)"] = step
            phases["loop, slicing, timers"] = total - sum(phases.values())
            breakdowns.append(phases)

    model_t = torch_model()
    loss_t_fn = torch.nn.CrossEntropyLoss()
    opt_t = torch.optim.Adam(model_t.parameters(), lr=1e-3)

    def torch_epoch(xs: Any, ys: Any) -> None:
        for start in range(0, len(xs), bs):
            xb, yb = xs[start : start + bs], ys[start : start + bs]
            opt_t.zero_grad()
            loss = loss_t_fn(model_t(xb), yb)
            loss.backward()
            opt_t.step()
            loss.item()  # as gradwise, whose loss returns a Python float every batch

    name_g, name_t = "gradwise", "PyTorch"
    candidates = {name_g: lambda: gradwise_epoch(x, y, True), name_t: lambda: torch_epoch(xt, yt)}
    warmups = {
        name_g: lambda: gradwise_epoch(x[:n_warm], y[:n_warm], False),
        name_t: lambda: torch_epoch(xt[:n_warm], yt[:n_warm]),
    }

    # Same network, same data: the first-batch losses must agree before anything is timed.
    loss0_g = SoftmaxCrossEntropy().forward(gradwise_model().forward(x[:bs]), y[:bs])
    with torch.no_grad():
        loss0_t = float(torch.nn.functional.cross_entropy(torch_model()(xt[:bs]), yt[:bs]))

    runs = common.time_interleaved(candidates, args.repeats, warmup=warmups)

    # ------------------------------------------------------------------ report
    n_batches = -(-n // bs)
    print(f"== {spec.title}")
    print(f"   float32, batch {bs}, Adam lr 1e-3, softmax CE, {n:,} samples ({n_batches} batches, no shuffle), "
          f"median of {args.repeats} epoch(s)" + ("  [--quick: smoke test, not a measurement]" if args.quick else ""))
    agree = "same network" if abs(loss0_g - loss0_t) <= 1e-4 * abs(loss0_t) else "MISMATCH: not the same network"
    print(f"   check: first-batch loss gradwise {loss0_g:.6f}, torch {loss0_t:.6f} ({agree})")
    secs = {name: [r.seconds for r in rs] for name, rs in runs.items()}
    quiet = {name: [r.seconds for r in rs if not _disturbed(r)] for name, rs in runs.items()}
    ref = common.median(secs[name_t])
    width = max(len(k) for k in runs)
    print(f"   {'candidate':<{width}}  {'epoch (s)':>9}  {'min (s)':>7}  {'quiet med':>9}  {'ms/batch':>8}  "
          f"{'vs PyTorch':>10}  runs (s)")
    for name, rs in runs.items():
        med = common.median(secs[name])
        quiet_med = f"{common.median(quiet[name]):9.3f}" if quiet[name] else f"{'-':>9}"
        marks = " ".join(f"{r.seconds:.3f}{'*' if _disturbed(r) else ''}" for r in rs)
        print(f"   {name:<{width}}  {med:9.3f}  {min(secs[name]):7.3f}  {quiet_med}  {1e3 * med / n_batches:8.2f}  "
              f"{med / ref:9.2f}x  {marks}")
    any_busy = any(_disturbed(r) for rs in runs.values() for r in rs)
    if any_busy:
        print(f"   * other processes kept more than {BUSY_THRESHOLD:.0%} of the CPUs busy during that run; "
              f"'quiet med' leaves such runs out. Rerun with more --repeats on a quieter machine.")
    line = f"ratio gradwise {spec.name} / PyTorch: {common.median(secs[name_g]) / ref:.2f}"
    if any_busy and all(quiet.values()):
        line += f" (quiet runs only: {common.median(quiet[name_g]) / common.median(quiet[name_t]):.2f})"
    print(line + "  (< 1: gradwise is faster)")

    g_quiet = [i for i, r in enumerate(runs[name_g]) if not _disturbed(r)]
    pool = g_quiet or list(range(len(runs[name_g])))
    pick = pool[common.median_index([secs[name_g][i] for i in pool])]
    phases = breakdowns[pick]
    total = sum(phases.values())
    print(f"   where the time goes in gradwise (run {pick + 1}, {total:.3f} s):")
    for phase, sec in sorted(phases.items(), key=lambda kv: -kv[1]):
        if sec >= 0.005 * total:
            print(f"     {phase:<34} {sec:7.3f} s  {100 * sec / total:5.1f} %  {1e3 * sec / n_batches:6.3f} ms/batch")
    print()
    return {name: common.median(secs[name]) for name in runs}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before numpy, gradwise or torch is imported: may re-exec this script.
    original_openblas_env = common.pin_threads(args.threads, args.unset_openblas_env)

    import gradwise

    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; nothing to compare with.", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)

    common.print_machine_header(args.threads, torch, original_openblas_env)
    print(f"versions   : gradwise {gradwise.__version__}, torch {torch.__version__} "
          f"(mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'})")
    print()
    chosen = ("mnist1d", "lenet") if args.model == "both" else (args.model,)
    all_specs = specs()
    for name in chosen:
        bench_model(all_specs[name], args, torch)
    return 0


def _disturbed(run: common.Run) -> bool:
    return run.others is not None and run.others > BUSY_THRESHOLD


if __name__ == "__main__":
    sys.exit(main())
