"""Training epochs timed the same way for gradwise and PyTorch: the shared machinery of the epoch cases.

Three candidates per case, timed round-robin on the same data in the same order (no shuffling),
the same initial weights (gradwise's, loaded into the torch model), the same batch size:

gradwise Trainer   : `Trainer(model, loss, opt, metrics=(), progress=False).fit(loader)`, what users get.
gradwise hand loop : forward layer by layer, loss, zero_grad, backward layer by layer, step, with a
                     `perf_counter` around each (about 0.1 us each): the per-phase breakdown.
PyTorch            : the standard loop (zero_grad, forward, loss, backward, step, loss.item()).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gradwise.bench.context import Context
from gradwise.bench.report import CaseResult, Target
from gradwise.bench.timing import median_index, time_interleaved

TRAINER, HAND, TORCH = "gradwise Trainer", "gradwise hand loop", "PyTorch"


def to_torch(model: Any, torch_model: Any, torch: Any, rename: Callable[[str], str] | None = None) -> Any:
    """Load `model`'s (gradwise) weights into `torch_model`; the names match unless `rename` maps them."""
    state = {(rename(k) if rename else k): torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
    torch_model.load_state_dict(state)
    return torch_model


def adam_pair(ctx: Context, lr: float) -> tuple[Any, Any]:
    """Factories of the two optimizers a case compares: gradwise's Adam and torch's (None
    without torch), both at `lr` with their defaults otherwise."""
    from gradwise.optim import Adam

    torch = ctx.torch
    return (lambda ps: Adam(ps, lr=lr)), (None if torch is None else (lambda ps: torch.optim.Adam(ps, lr=lr)))


def mnist1d_train(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D's training sequences (400 of them with --quick), float32 inputs, int64 labels."""
    from gradwise.data.datasets import load_mnist1d

    x, y, _, _ = load_mnist1d()
    n = ctx.pick(400, len(x))
    return np.ascontiguousarray(x[:n], dtype=np.float32), y[:n].astype(np.int64)


def hand_epoch(model: Any, loss: Any, opt: Any, x: np.ndarray, y: np.ndarray, bs: int,
               record: list[dict[str, float]] | None) -> None:
    """One epoch written out over a `Sequential`, timing each child's forward and backward,
    the loss, zero_grad and the step; appends the phase times to `record` when given."""
    clock = time.perf_counter
    layers = list(model)
    labels = [f"{i} {type(layer).__name__}" for i, layer in enumerate(layers)]
    fwd = [0.0] * len(layers)
    bwd = [0.0] * len(layers)
    loss_t = zero = step = 0.0
    start_all = clock()
    for start in range(0, len(x), bs):
        h, yb = x[start : start + bs], y[start : start + bs]
        for i, layer in enumerate(layers):
            t0 = clock()
            h = layer.forward(h)
            fwd[i] += clock() - t0
        t0 = clock()
        loss.forward(h, yb)
        g = loss.backward()
        t1 = clock()
        loss_t += t1 - t0
        opt.zero_grad()
        t2 = clock()
        for i in range(len(layers) - 1, -1, -1):
            tb = clock()
            # as the Trainer does: no one needs the gradient for the model's input
            g = layers[i].backward(g, input_grad=i > 0)
            bwd[i] += clock() - tb
        t3 = clock()
        opt.step()
        t4 = clock()
        zero += t2 - t1
        step += t4 - t3
    total = clock() - start_all
    if record is not None:
        phases = {f"{label} forward": f for label, f in zip(labels, fwd)}
        phases.update({f"{label} backward": b for label, b in zip(labels, bwd)})
        phases["loss (value + gradient)"] = loss_t
        phases["zero_grad"] = zero
        phases[f"optimizer step ({type(opt).__name__})"] = step
        phases["loop, slicing, timers"] = total - sum(phases.values())
        record.append(phases)


def torch_epoch(model: Any, loss_fn: Any, opt: Any, xs: Any, ys: Any, bs: int) -> None:
    """One PyTorch training epoch over (xs, ys) in order: the standard loop."""
    for start in range(0, len(xs), bs):
        xb, yb = xs[start : start + bs], ys[start : start + bs]
        opt.zero_grad()
        out = loss_fn(model(xb), yb)
        out.backward()
        opt.step()
        out.item()  # as gradwise, whose loss returns a Python float every batch


def epoch_case(
    ctx: Context,
    name: str,
    title: str,
    x: np.ndarray,
    y: np.ndarray,
    bs: int,
    build: Callable[[], Any],
    build_torch: Callable[[Any], Any] | None,
    make_opt: Callable[[list[Any]], Any],
    make_torch_opt: Callable[[Any], Any] | None,
    targets: list[Target] | None = None,
    warmup_batches: int = 3,
) -> CaseResult:
    """Time one training epoch of the model `build()` makes: Trainer, hand loop and PyTorch.

    `build_torch(gradwise_model)` returns the torch model with the gradwise model's weights;
    `make_opt(params)` and `make_torch_opt(torch_params)` the optimizers.
    """
    from gradwise.data.loader import DataLoader
    from gradwise.losses import SoftmaxCrossEntropy
    from gradwise.training.trainer import Trainer

    n_warm = min(len(x), warmup_batches * bs)
    n_batches = -(-len(x) // bs)
    result = CaseResult(name, title, "s/epoch", ours=TRAINER, targets=list(targets or []))

    model_a = build()
    trainer = Trainer(model_a, SoftmaxCrossEntropy(), make_opt(model_a.parameters()), metrics=(), progress=False)
    loader = DataLoader(x, y, batch_size=bs, shuffle=False)
    warm_loader = DataLoader(x[:n_warm], y[:n_warm], batch_size=bs, shuffle=False)
    model_b, loss_b = build(), SoftmaxCrossEntropy()
    opt_b = make_opt(model_b.parameters())
    phases: list[dict[str, float]] = []
    candidates: dict[str, Callable[[], object]] = {
        TRAINER: lambda: trainer.fit(loader, epochs=1),
        HAND: lambda: hand_epoch(model_b, loss_b, opt_b, x, y, bs, phases),
    }
    warmups: dict[str, Callable[[], object]] = {
        TRAINER: lambda: trainer.fit(warm_loader, epochs=1),
        HAND: lambda: hand_epoch(model_b, loss_b, opt_b, x[:n_warm], y[:n_warm], bs, None),
    }
    torch = ctx.torch
    if torch is not None and build_torch is not None and make_torch_opt is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        model_t = build_torch(build())
        opt_t = make_torch_opt(model_t.parameters())
        loss_t = torch.nn.CrossEntropyLoss()
        candidates[TORCH] = lambda: torch_epoch(model_t, loss_t, opt_t, xt, yt, bs)
        warmups[TORCH] = lambda: torch_epoch(model_t, loss_t, opt_t, xt[:n_warm], yt[:n_warm], bs)
        result.peer = TORCH
        # Same network, same data: the first-batch losses must agree before anything is timed.
        loss0 = SoftmaxCrossEntropy().forward(build().forward(x[:bs]), y[:bs])
        with torch.no_grad():
            loss0_t = float(torch.nn.functional.cross_entropy(build_torch(build())(xt[:bs]), yt[:bs]))
        same = abs(loss0 - loss0_t) <= 1e-4 * max(1.0, abs(loss0_t))
        result.notes.append(f"first-batch loss gradwise {loss0:.6f}, PyTorch {loss0_t:.6f} "
                            f"({'same network' if same else 'MISMATCH: not the same network'})")
    else:
        result.peer_missing = ctx.torch_missing or "no PyTorch equivalent"

    runs = time_interleaved(candidates, ctx.repeats, warmup=warmups)
    for label, rs in runs.items():
        result.add_row(label, [r.seconds for r in rs], [r.disturbed for r in rs])
    hand = runs[HAND]
    pool = [i for i, r in enumerate(hand) if not r.disturbed] or list(range(len(hand)))
    pick = pool[median_index([hand[i].seconds for i in pool])]
    result.phases = phases[pick]
    result.phases_of = f"hand loop, median epoch, {n_batches} batches"
    result.notes.append(f"{len(x):,} samples, batch {bs} ({n_batches} batches, no shuffle), float32, "
                        f"median of {ctx.repeats} round(s)")
    return result
