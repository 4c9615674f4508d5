"""One training epoch of the MNIST-1D GRU: gradwise against PyTorch CPU, same process.

Both libraries train the MNIST-1D paper's recurrent model (Greydanus, 2020): each sequence of 40
values is read one value per step by a bidirectional GRU with 6 hidden units, and the 40 x 12
outputs are flattened into a linear classifier (480 -> 10). Same initial weights, the same 4,000
training sequences in the same order (no shuffling), batch 100, Adam (lr 1e-2), softmax
cross-entropy, float32, the same number of threads. Each candidate is warmed up on a few batches,
then the candidates are timed round-robin for `--repeats` epochs and the median epoch is reported.

Candidates
----------
gradwise, Trainer   : `Trainer(model, loss, Adam, metrics=(), progress=False).fit(loader)`.
gradwise, hand loop : forward / loss / zero_grad / backward / step written out, with the time per
                      phase (the recurrent layer apart from the rest).
PyTorch             : the standard loop with `torch.nn.GRU(batch_first=True, bidirectional=True)`
                      (zero_grad, forward, loss, backward, step, loss.item()).

Usage::

    python bench/bench_rnn.py                     # full run, 2 threads, 3 repeats
    python bench/bench_rnn.py --cell lstm         # the same model with an LSTM (or rnn)
    python bench/bench_rnn.py --threads 1 --repeats 5
    python bench/bench_rnn.py --quick             # smoke test (400 samples, 1 repeat)

The thread count is set through OMP/OPENBLAS/MKL_NUM_THREADS, so the script re-executes itself
with those variables when the environment does not already have them (see `common.pin_threads`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parent), str(_HERE)):  # gradwise from this checkout, then bench/common.py
    if _path not in sys.path:
        sys.path.insert(0, _path)

import common  # noqa: E402  (imports no numpy at module level: threads are pinned first)

STEPS, HIDDEN, CLASSES = 40, 6, 10
CELLS = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN"}
# A run during which other processes kept more than this share of the CPUs busy is flagged.
BUSY_THRESHOLD = 0.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for both libraries (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs per candidate (default 3; 1 with --quick)")
    parser.add_argument("--samples", type=int, default=None, help="training sequences per epoch (default 4000; 400 with --quick)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--warmup-batches", type=int, default=None, help="warm-up batches per candidate (default 5; 1 with --quick)")
    parser.add_argument("--cell", choices=sorted(CELLS), default="gru", help="recurrent cell (default gru, the paper's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny run for CI smoke tests (numbers are meaningless)")
    parser.add_argument(
        "--unset-openblas-env",
        action="store_true",
        help="re-run without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (OpenBLAS then detects the CPU itself)",
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    args.samples = args.samples if args.samples is not None else (400 if args.quick else 4000)
    args.warmup_batches = args.warmup_batches if args.warmup_batches is not None else (1 if args.quick else 5)
    for name in ("repeats", "samples", "batch_size", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before numpy, gradwise or torch is imported: may re-exec this script.
    original_openblas_env = common.pin_threads(args.threads, args.unset_openblas_env)

    import numpy as np

    import gradwise
    from gradwise.core import Sequential
    from gradwise.data.datasets import load_mnist1d
    from gradwise.layers import recurrent
    from gradwise.layers.linear import Linear
    from gradwise.layers.reshape import Reshape
    from gradwise.layers.structure import Flatten
    from gradwise.losses import SoftmaxCrossEntropy
    from gradwise.optim import Adam

    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; nothing to compare with.", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)

    cell = CELLS[args.cell]
    x_all, y_all, _, _ = load_mnist1d()
    reps = -(-args.samples // len(x_all))  # more samples than MNIST-1D has: repeat it
    x = np.ascontiguousarray(np.tile(x_all, (reps, 1))[: args.samples], dtype=np.float32)
    y = np.tile(y_all, reps)[: args.samples].astype(np.int64)
    n, bs = len(x), args.batch_size
    n_warm = min(n, args.warmup_batches * bs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)  # shared memory, no copy

    # ------------------------------------------------------------------ models (same weights)
    def gradwise_model() -> Sequential:
        rng = np.random.default_rng(args.seed + 1)
        rnn = getattr(recurrent, cell)(1, HIDDEN, batch_first=True, bidirectional=True, rng=rng)
        return Sequential(Reshape((STEPS, 1)), rnn, Flatten(), Linear(2 * HIDDEN * STEPS, CLASSES, rng=rng))

    class TorchNet(torch.nn.Module):
        """The paper's GRUBase: view (N, 40, 1), recurrent layer, flatten the outputs, linear."""

        def __init__(self) -> None:
            super().__init__()
            self.rnn = getattr(torch.nn, cell)(1, HIDDEN, batch_first=True, bidirectional=True)
            self.linear = torch.nn.Linear(2 * HIDDEN * STEPS, CLASSES)

        def forward(self, xb: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(xb.view(xb.shape[0], STEPS, 1))
            return self.linear(out.reshape(out.shape[0], -1))

    def torch_model() -> TorchNet:
        model = TorchNet()
        # gradwise names: "1.weight_ih_l0" (the recurrent layer), "3.weight" (the linear layer).
        renamed = {("rnn." if k.startswith("1.") else "linear.") + k.split(".", 1)[1]: torch.from_numpy(v)
                   for k, v in gradwise_model().state_dict().items()}
        model.load_state_dict(renamed)
        return model

    # ------------------------------------------------------------------ epoch functions
    hand_phases: list[dict[str, float]] = []

    def gradwise_hand_epoch(model, loss_fn, opt, xs, ys, record: bool) -> None:
        clock = time.perf_counter
        layers = model.layers
        rnn_f = rest_f = loss_t = zero = rnn_b = rest_b = step = 0.0
        t_start = clock()
        for start in range(0, len(xs), bs):
            xb, yb = xs[start : start + bs], ys[start : start + bs]
            t0 = clock()
            h = layers[0].forward(xb)
            t1 = clock()
            h = layers[1].forward(h)
            t2 = clock()
            scores = layers[3].forward(layers[2].forward(h))
            t3 = clock()
            loss_fn.forward(scores, yb)
            g = loss_fn.backward()
            t4 = clock()
            opt.zero_grad()
            t5 = clock()
            g = layers[2].backward(layers[3].backward(g))
            t6 = clock()
            g = layers[1].backward(g)
            t7 = clock()
            layers[0].backward(g)
            t8 = clock()
            opt.step()
            t9 = clock()
            rnn_f += t2 - t1
            rest_f += (t1 - t0) + (t3 - t2)
            loss_t += t4 - t3
            zero += t5 - t4
            rest_b += (t6 - t5) + (t8 - t7)
            rnn_b += t7 - t6
            step += t9 - t8
        total = clock() - t_start
        if record:
            hand_phases.append(
                {
                    f"{cell} forward": rnn_f,
                    f"{cell} backward (BPTT)": rnn_b,
                    "Reshape, Flatten, Linear forward": rest_f,
                    "Reshape, Flatten, Linear backward": rest_b,
                    "loss (softmax CE, value + grad)": loss_t,
                    "zero_grad": zero,
                    "optimizer step (Adam)": step,
                    "loop, slicing, timers": total - (rnn_f + rnn_b + rest_f + rest_b + loss_t + zero + step),
                }
            )

    def torch_epoch(model, loss_fn, opt, xs, ys) -> None:
        common.torch_epoch(model, loss_fn, opt, xs, ys, bs)

    candidates: dict = {}
    warmups: dict = {}
    notes: list[str] = []

    name_trainer = "gradwise, Trainer"
    try:
        from gradwise.data.loader import DataLoader
        from gradwise.training.trainer import Trainer

        model_a = gradwise_model()
        trainer = Trainer(model_a, SoftmaxCrossEntropy(), Adam(model_a.parameters(), lr=1e-2), metrics=(), progress=False)
        loader_rng = np.random.default_rng(args.seed + 2)
        loader = DataLoader(x, y, batch_size=bs, shuffle=False, rng=loader_rng)
        warm_loader = DataLoader(x[:n_warm], y[:n_warm], batch_size=bs, shuffle=False, rng=loader_rng)
        warmups[name_trainer] = lambda: trainer.fit(warm_loader, epochs=1)
        candidates[name_trainer] = lambda: trainer.fit(loader, epochs=1)
        warmups[name_trainer]()  # fail here, not in the middle of the timed runs
    except Exception as err:  # report instead of failing: the hand loop is the reference
        candidates.pop(name_trainer, None)
        warmups.pop(name_trainer, None)
        notes.append(f"{name_trainer}: not measured ({type(err).__name__}: {err})")

    model_b, loss_b = gradwise_model(), SoftmaxCrossEntropy()
    opt_b = Adam(model_b.parameters(), lr=1e-2)
    name_hand = "gradwise, hand loop"
    warmups[name_hand] = lambda: gradwise_hand_epoch(model_b, loss_b, opt_b, x[:n_warm], y[:n_warm], False)
    candidates[name_hand] = lambda: gradwise_hand_epoch(model_b, loss_b, opt_b, x, y, True)

    name_torch = "PyTorch"
    model_t = torch_model()
    setup = (model_t, torch.nn.CrossEntropyLoss(), torch.optim.Adam(model_t.parameters(), lr=1e-2))
    warmups[name_torch] = lambda: torch_epoch(*setup, xt[:n_warm], yt[:n_warm])
    candidates[name_torch] = lambda: torch_epoch(*setup, xt, yt)

    # Same network, same data: the first-batch losses must agree before anything is timed.
    loss0_g = SoftmaxCrossEntropy().forward(gradwise_model().forward(x[:bs]), y[:bs])
    with torch.no_grad():
        loss0_t = float(torch.nn.functional.cross_entropy(torch_model()(xt[:bs]), yt[:bs]))

    runs = common.time_interleaved(candidates, args.repeats, warmup=warmups)

    # ------------------------------------------------------------------ report
    n_batches = -(-n // bs)
    print(f"MNIST-1D {cell}: Reshape(40, 1), bidirectional {cell}(1, {HIDDEN}, batch_first), Flatten, "
          f"Linear(480, 10); float32, batch {bs}, Adam lr 1e-2, softmax CE, {n:,} samples "
          f"({n_batches} batches, no shuffle), median of {args.repeats} epoch(s)"
          + ("  [--quick: smoke test, not a measurement]" if args.quick else ""))
    common.print_machine_header(args.threads, torch, original_openblas_env)
    print(f"versions   : gradwise {gradwise.__version__}, torch {torch.__version__}")
    agree = "same network" if abs(loss0_g - loss0_t) <= 1e-4 * abs(loss0_t) else "MISMATCH: not the same network"
    print(f"check      : first-batch loss gradwise {loss0_g:.6f}, torch {loss0_t:.6f} ({agree})")
    for note in notes:
        print(f"note       : {note}")
    print()

    secs = {name: [r.seconds for r in rs] for name, rs in runs.items()}
    quiet = {name: [r.seconds for r in rs if not _disturbed(r)] for name, rs in runs.items()}
    ref = common.median(secs[name_torch])
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
    if any_busy:
        print(f"  * other processes kept more than {BUSY_THRESHOLD:.0%} of the CPUs busy during that run; "
              f"'quiet med' leaves such runs out. Rerun with more --repeats on a quieter machine.")
    print()
    for name in (name_trainer, name_hand):
        if name in runs:
            line = f"ratio {name.replace('gradwise, ', 'gradwise ')} / PyTorch: {common.median(secs[name]) / ref:.2f}"
            if any_busy and quiet[name] and quiet[name_torch]:
                line += f" (quiet runs only: {common.median(quiet[name]) / common.median(quiet[name_torch]):.2f})"
            print(line + "  (< 1: gradwise is faster)")
    print()

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


if __name__ == "__main__":
    sys.exit(main())
