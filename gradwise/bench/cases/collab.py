"""Collaborative filtering: one training epoch of the MovieLens dot-product model, gradwise vs PyTorch.

The model of ``examples/movielens_collab.toml`` (`EmbeddingDotBias`, 50 factors, y_range (0, 5.5),
MSE) on the 80,000 training ratings of the random 80/20 split, batch 64 (1,250 steps), AdamW with
fastai's settings (lr 5e-3 held constant here, betas (0.9, 0.99), eps 1e-5, weight decay 0.1).
Rows, timed round-robin on the same batches in the same order from the same initial weights:

gradwise Trainer   : `Trainer.fit(loader, epochs=1)`, what ``gradwise train`` runs;
gradwise hand loop : forward, loss, zero_grad, backward, step with a timer around each;
PyTorch            : the fastbook's ``DotProductBias`` (plain tensors indexed by the batch, dense
                     gradients as ``nn.Embedding``'s default) and ``torch.optim.AdamW``, standard loop.

The ratings come from ``$GRADWISE_DATA/ml-100k`` or the cache (`gradwise.data.movielens`); where
MovieLens is absent, synthetic ratings of the same shape (943 users, 1682 items, popularity-skewed
draws) stand in, and a note says so: the time of an epoch depends on the shapes, not the values.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gradwise.bench.context import Context
from gradwise.bench.epochs import HAND, TORCH, TRAINER
from gradwise.bench.report import CaseResult, Target
from gradwise.bench.timing import median_index, time_interleaved

N_FACTORS, BATCH, LR, BETAS, EPS, WD = 50, 64, 5e-3, (0.9, 0.99), 1e-5, 0.1
Y_RANGE = (0.0, 5.5)


def ratings(ctx: Context) -> tuple[np.ndarray, np.ndarray, int, int, str]:
    """(x int64 (N, 2), y float32 (N,), n_users rows, n_items rows, where they came from)."""
    from gradwise.collab.data import movielens_collab
    from gradwise.data.sources import DatasetNotFoundError

    try:
        data = movielens_collab(split="random", valid_pct=0.2, seed=0)
        x, y = data.x_train, data.y_train
        n_users, n_items, source = len(data.users), len(data.items), "MovieLens 100k (the random 80/20 split, seed 0)"
    except DatasetNotFoundError:
        rng = np.random.default_rng(ctx.seed)
        n_users, n_items, n = 944, 1683, 80_000
        popularity = rng.zipf(1.5, n_items - 1).astype(np.float64)
        items = rng.choice(np.arange(1, n_items), n, p=popularity / popularity.sum())
        x = np.stack([rng.integers(1, n_users, n), items], axis=1).astype(np.int64)
        y = rng.integers(1, 6, n).astype(np.float32)
        source = "synthetic ratings of MovieLens 100k's shape (ml-100k not found in $GRADWISE_DATA or the cache)"
    n = ctx.pick(50 * BATCH, len(x))
    return np.ascontiguousarray(x[:n]), np.ascontiguousarray(y[:n]), n_users, n_items, source


def torch_model(torch: Any, model: Any) -> Any:
    """The fastbook's DotProductBias with `model`'s weights."""

    class DotProductBias(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name in ("u_weight", "i_weight", "u_bias", "i_bias"):
                setattr(self, name, torch.nn.Parameter(torch.from_numpy(getattr(model, name).data.copy())))

        def forward(self, x: Any) -> Any:
            users, items = x[:, 0], x[:, 1]
            res = (self.u_weight[users] * self.i_weight[items]).sum(1) + self.u_bias[users] + self.i_bias[items]
            return torch.sigmoid(res) * (Y_RANGE[1] - Y_RANGE[0]) + Y_RANGE[0]

    return DotProductBias()


def _hand_epoch(model: Any, loss: Any, opt: Any, x: np.ndarray, y: np.ndarray, record: list[dict[str, float]] | None
                ) -> None:
    clock = time.perf_counter
    fwd = bwd = loss_t = zero = step = 0.0
    start_all = clock()
    for s in range(0, len(x), BATCH):
        xb, yb = x[s : s + BATCH], y[s : s + BATCH]
        t0 = clock()
        out = model.forward(xb)
        t1 = clock()
        loss.forward(out, yb)
        g = loss.backward()
        t2 = clock()
        opt.zero_grad()
        t3 = clock()
        model.backward(g, input_grad=False)
        t4 = clock()
        opt.step()
        t5 = clock()
        fwd, loss_t, zero, bwd, step = fwd + t1 - t0, loss_t + t2 - t1, zero + t3 - t2, bwd + t4 - t3, step + t5 - t4
    total = clock() - start_all
    if record is not None:
        phases = {"EmbeddingDotBias forward": fwd, "EmbeddingDotBias backward (scatter)": bwd,
                  "loss (value + gradient)": loss_t, "zero_grad": zero, f"optimizer step ({type(opt).__name__})": step}
        phases["loop, slicing, timers"] = total - sum(phases.values())
        record.append(phases)


def _torch_epoch(torch: Any, model: Any, opt: Any, xs: Any, ys: Any) -> None:
    for s in range(0, len(xs), BATCH):
        opt.zero_grad()
        out = torch.nn.functional.mse_loss(model(xs[s : s + BATCH]), ys[s : s + BATCH])
        out.backward()
        opt.step()
        out.item()


def collab_epoch(ctx: Context) -> CaseResult:
    from gradwise.collab import EmbeddingDotBias
    from gradwise.data.loader import DataLoader
    from gradwise.losses import MSE
    from gradwise.optim import AdamW
    from gradwise.training.trainer import Trainer

    x, y, n_users, n_items, source = ratings(ctx)
    title = (f"MovieLens dot-product model epoch: EmbeddingDotBias({n_users}, {n_items}, {N_FACTORS}), "
             f"batch {BATCH}, MSE, AdamW lr {LR:g} wd {WD:g}")
    result = CaseResult("collab-movielens", title, "s/epoch", ours=TRAINER, targets=[Target("ratio", "<=", 0.8)])

    def build() -> Any:
        return EmbeddingDotBias(n_users, n_items, N_FACTORS, Y_RANGE, rng=np.random.default_rng(ctx.seed + 1))

    def adamw(params: Any) -> Any:
        return AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)

    n_warm = min(len(x), 3 * BATCH)
    model_a = build()
    trainer = Trainer(model_a, MSE(), adamw(model_a.parameters()), metrics=(), progress=False)
    loader = DataLoader(x, y, batch_size=BATCH, shuffle=False)
    warm_loader = DataLoader(x[:n_warm], y[:n_warm], batch_size=BATCH, shuffle=False)
    model_b, loss_b = build(), MSE()
    opt_b = adamw(model_b.parameters())
    phases: list[dict[str, float]] = []
    candidates = {TRAINER: lambda: trainer.fit(loader, epochs=1),
                  HAND: lambda: _hand_epoch(model_b, loss_b, opt_b, x, y, phases)}
    warmups = {TRAINER: lambda: trainer.fit(warm_loader, epochs=1),
               HAND: lambda: _hand_epoch(model_b, loss_b, opt_b, x[:n_warm], y[:n_warm], None)}
    torch = ctx.torch
    if torch is not None:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        model_t = torch_model(torch, build())
        opt_t = torch.optim.AdamW(model_t.parameters(), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
        candidates[TORCH] = lambda: _torch_epoch(torch, model_t, opt_t, xt, yt)
        warmups[TORCH] = lambda: _torch_epoch(torch, model_t, opt_t, xt[:n_warm], yt[:n_warm])
        result.peer = TORCH
        loss0 = MSE().forward(build().forward(x[:BATCH]), y[:BATCH])
        with torch.no_grad():
            loss0_t = float(torch.nn.functional.mse_loss(torch_model(torch, build())(xt[:BATCH]), yt[:BATCH]))
        same = abs(loss0 - loss0_t) <= 1e-4 * max(1.0, abs(loss0_t))
        result.notes.append(f"first-batch loss gradwise {loss0:.6f}, PyTorch {loss0_t:.6f} "
                            f"({'same network' if same else 'MISMATCH: not the same network'})")
    else:
        result.peer_missing = ctx.torch_missing

    runs = time_interleaved(candidates, ctx.repeats, warmup=warmups)
    for label, rs in runs.items():
        result.add_row(label, [r.seconds for r in rs], [r.disturbed for r in rs])
    hand = runs[HAND]
    pool = [i for i, r in enumerate(hand) if not r.disturbed] or list(range(len(hand)))
    result.phases = phases[pool[median_index([hand[i].seconds for i in pool])]]
    n_batches = -(-len(x) // BATCH)
    result.phases_of = f"hand loop, median epoch, {n_batches} batches"
    backward = "numba-fused scatter" if model_b.fused else "np.add.at scatter (numba not installed)"
    result.notes.append(f"{len(x):,} ratings from {source}; batch {BATCH} ({n_batches} batches, no shuffle), "
                        f"float32, {backward}, median of {ctx.repeats} round(s)")
    return result
