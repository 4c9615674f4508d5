"""Data-parallel training on localhost: `mpiexec -n 2` against one process, float64.

Each run is examples/distributed_mlp.py (the MNIST-1D MLP of examples/mnist1d_mlp.toml, 3 epochs
of 36 global batches of 100), which saves its final weights and epoch history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mpi_helpers import ROOT, mpiexec_or_skip, run

import gradwise as gw
from gradwise.distributed import shard_bounds

EXAMPLE = str(ROOT / "examples" / "distributed_mlp.py")


def train(tmp_path: Path, ranks: int, *options: str) -> dict[str, np.ndarray]:
    import sys

    out = tmp_path / f"w{ranks}{''.join(options)}.npz"
    command = [sys.executable, EXAMPLE, "--epochs", "3", "--save", str(out), *options]
    if ranks > 1:
        command = [mpiexec_or_skip(), "-n", str(ranks), *command]
    result = run(command, timeout=120)
    assert result.returncode == 0, result.stderr
    with np.load(out) as data:
        return dict(data)


def max_weight_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    keys = [k for k in a if not k.startswith("history/")]
    assert keys == [k for k in b if not k.startswith("history/")]
    return max(float(np.abs(a[k] - b[k]).max()) for k in keys)


def test_two_ranks_end_with_the_weights_of_one_process(tmp_path: Path, tol: Any) -> None:
    mpiexec_or_skip()
    one, two = train(tmp_path, 1), train(tmp_path, 2)
    assert max_weight_difference(one, two) <= tol.distributed
    # The epoch logs are those of the global batches: the loss to rounding, the accuracy exactly
    # (the scores of both ranks, gathered in the order of the batch rows).
    np.testing.assert_allclose(two["history/loss"], one["history/loss"], rtol=tol.distributed, atol=0)
    np.testing.assert_array_equal(two["history/accuracy"], one["history/accuracy"])


def test_synchronized_batchnorm_matches_one_process_and_local_batchnorm_does_not(tmp_path: Path, tol: Any) -> None:
    mpiexec_or_skip()
    one = train(tmp_path, 1, "--bn", "local")  # one process: BatchNorm over the whole batch
    synced = train(tmp_path, 2, "--bn", "sync")
    local = train(tmp_path, 2, "--bn", "local")  # each rank normalizes its half (DDP's default)
    assert max_weight_difference(one, synced) <= tol.distributed
    # The running statistics are those of the global batches too (every rank has the same).
    for key in ("1.running_mean", "1.running_var", "4.running_mean", "4.running_var"):
        np.testing.assert_allclose(synced[key], one[key], rtol=0, atol=tol.distributed)
    assert max_weight_difference(one, local) > 1e-6


def test_shards_cover_the_batch_in_order() -> None:
    for n in (1, 2, 7, 100):
        for size in (1, 2, 3, 8):
            pieces = [shard_bounds(n, r, size) for r in range(size)]
            assert pieces[0][0] == 0 and pieces[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
            assert max(h - l for l, h in pieces) - min(h - l for l, h in pieces) <= 1


def test_a_single_process_never_imports_mpi4py() -> None:
    code = (
        "import sys, numpy as np, gradwise as gw\n"
        "from gradwise.data import DataLoader\n"
        "m = gw.Sequential(gw.layers.Linear(2, 3))\n"
        "t = gw.Trainer(m, gw.losses.SoftmaxCrossEntropy(), gw.optim.SGD(m.parameters(), lr=0.1), progress=False)\n"
        "t.fit(DataLoader(np.ones((8, 2)), np.zeros(8, dtype=int), batch_size=4))\n"
        "print('mpi4py' in sys.modules)\n"
    )
    import sys

    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]


def test_one_rank_distributed_is_bitwise_the_single_process_step() -> None:
    # distributed=True with K = 1 runs the data-parallel step (flat buffer, loss slot, shards of
    # the whole batch): the weights are bit for bit those of the ordinary step.
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install 'gradwise[mpi]')")
    code = (
        "import numpy as np, gradwise as gw\n"
        "from gradwise.data import DataLoader, make_spiral\n"
        "x, y = make_spiral(n_per_class=30, n_classes=3, rng=np.random.default_rng(0))\n"
        "out = []\n"
        "for dist in (False, True):\n"
        "    gw.manual_seed(1)\n"
        "    L = gw.layers\n"
        "    m = gw.Sequential(L.Linear(2, 16), L.BatchNorm1d(16), L.ReLU(), L.Linear(16, 3))\n"
        "    t = gw.Trainer(m, gw.losses.SoftmaxCrossEntropy(), gw.optim.Adam(m.parameters(), lr=1e-2),\n"
        "                   metrics=[gw.metrics.accuracy], progress=False, distributed=dist, accumulate=2)\n"
        "    t.fit(DataLoader(x, y, batch_size=16, shuffle=True, rng=np.random.default_rng(2)), epochs=3)\n"
        "    out.append((m.state_dict(), t.history.epochs[-1]['loss'], t.history.batch_loss))\n"
        "(a, la, ba), (b, lb, bb) = out\n"
        "print(all(np.array_equal(a[k], b[k]) for k in a), la == lb, ba == bb)\n"
    )
    import sys

    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


def test_trainer_rejects_a_bad_distributed_argument() -> None:
    m = gw.Sequential(gw.layers.Linear(2, 3))
    with pytest.raises(TypeError, match="distributed must be a bool or a Communicator"):
        gw.Trainer(m, gw.losses.SoftmaxCrossEntropy(), gw.optim.SGD(m.parameters(), lr=0.1), distributed="yes")


MIXED = """
import numpy as np, gradwise as gw
from gradwise.data import DataLoader, make_spiral
from gradwise.distributed import Communicator
from gradwise.layers import Dropout, Linear, Tanh
from gradwise.losses import L2, SoftmaxCrossEntropy

comm = Communicator(timeout=60)
x, y = make_spiral(n_per_class=50, n_classes=3, rng=np.random.default_rng(0))
x, y = x[:148], y[:148]  # batches of 15 split 7 + 8, the last one (13) 6 + 7

def train(distributed):
    # Other seeds on the other ranks: rank 0's weights and generators (data order, masks) win.
    gw.manual_seed(3 + comm.rank * distributed)
    model = gw.Sequential(Linear(2, 32), Tanh(), Dropout(0.3), Linear(32, 3)).astype(np.float64)
    trainer = gw.Trainer(
        model, SoftmaxCrossEntropy(), gw.optim.Adam(model.parameters(), lr=1e-2, flat=True),
        metrics=[gw.metrics.accuracy], penalty=L2(1e-3), clip_grad_norm=0.5, accumulate=2, progress=False,
        distributed=comm if distributed else False,
    )
    loader = DataLoader(x, y, batch_size=15, shuffle=True, rng=np.random.default_rng(4 + comm.rank * distributed),
                        dtype=np.float64)
    trainer.fit(loader, epochs=4)
    return model.state_dict(), trainer

alone, t1 = train(False)
together, t2 = train(True)
if comm.rank == 0:
    print(max(float(np.abs(alone[k] - together[k]).max()) for k in alone))
    print(max(abs(a - b) for a, b in zip(t1.history.batch_loss, t2.history.batch_loss)))
    print([r["accuracy"] for r in t1.history.epochs] == [r["accuracy"] for r in t2.history.epochs])
    print(t1.global_step == t2.global_step == 20)
"""


def test_uneven_shards_dropout_accumulation_a_flat_optimizer_and_clipping_match_one_process(tol: Any) -> None:
    # Dropout's masks are one process's: each rank draws the global batch's and keeps its rows.
    import sys

    result = run([mpiexec_or_skip(), "-n", "2", sys.executable, "-c", MIXED], timeout=120)
    assert result.returncode == 0, result.stderr
    weights, losses, accuracies, steps = result.stdout.split()
    assert float(weights) <= tol.distributed
    assert float(losses) <= tol.distributed
    assert accuracies == "True" and steps == "True"


CONV = """
import numpy as np, gradwise as gw
from gradwise.data import DataLoader
from gradwise.distributed import Communicator, SyncBatchNorm2d, convert_sync_batchnorm
from gradwise.layers import BatchNorm2d, Conv2d, Flatten, Linear, ReLU
from gradwise.losses import SoftmaxCrossEntropy

comm = Communicator(timeout=60)
rng = np.random.default_rng(0)
x, y = rng.standard_normal((96, 2, 6, 6)), rng.integers(0, 3, 96)

def train(distributed):
    gw.manual_seed(5)
    model = gw.Sequential(Conv2d(2, 4, 3, padding=1, bias=False), BatchNorm2d(4), ReLU(), Flatten(),
                          Linear(144, 3)).astype(np.float64)
    if distributed:
        assert convert_sync_batchnorm(model, comm) == 1 and isinstance(model[1], SyncBatchNorm2d)
    trainer = gw.Trainer(model, SoftmaxCrossEntropy(), gw.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                         progress=False, distributed=comm if distributed else False)
    trainer.fit(DataLoader(x, y, batch_size=32, shuffle=True, rng=np.random.default_rng(1), dtype=np.float64), epochs=3)
    return model.state_dict()

alone, together = train(False), train(True)
if comm.rank == 0:
    print(max(float(np.abs(alone[k] - together[k]).max()) for k in alone))
"""


def test_synchronized_batchnorm2d_in_a_convolutional_net_matches_one_process(tol: Any) -> None:
    import sys

    result = run([mpiexec_or_skip(), "-n", "2", sys.executable, "-c", CONV], timeout=120)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) <= tol.distributed
