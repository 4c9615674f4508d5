"""Run the babysitting protocol from Python on an MLP for MNIST-1D, healthy and with planted problems.

    python examples/diagnose_mnist1d.py [OUT_DIR]

Each case is diagnosed with `gw.diagnostics.diagnose` (the same steps as ``gradwise diagnose``) and
its verdicts printed; the report, the CSVs and the plots of each go to ``OUT_DIR/<case>``
(default ``runs/diagnose-example``, which must not hold an earlier run). See ``docs/diagnose.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

import gradwise as gw
from gradwise.layers import Linear, ReLU
from gradwise.viz import plot_diagnosis


def mlp() -> gw.Sequential:
    gw.manual_seed(0)
    return gw.Sequential(Linear(40, 100), ReLU(), Linear(100, 100), ReLU(), Linear(100, 10))


def main(out: Path) -> int:
    x_train, y_train, x_test, y_test = gw.data.load_mnist1d()
    data = (x_train, y_train, x_test, y_test)  # the test split as the dev set: a train-dev set is held out
    loss = gw.losses.SoftmaxCrossEntropy()
    console = Console(width=150)

    cases = {}
    model = mlp()
    cases["healthy"] = (model, gw.optim.Adam(model.parameters(), lr=3e-3))
    model = mlp()
    cases["lr-too-low"] = (model, gw.optim.Adam(model.parameters(), lr=3e-6))  # 1000x too low
    model = mlp()
    model[0].bias.data[...] = -5.0  # a large negative bias: the first ReLU layer is dead
    cases["dead-relus"] = (model, gw.optim.Adam(model.parameters(), lr=3e-3))

    worst = 0
    for name, (model, opt) in cases.items():
        d = gw.diagnostics.diagnose(
            model, loss, data, optimizer=opt, penalty=gw.losses.L2(1e-4), batch_size=100, steps=600,
            run_dir=out / name, plot=plot_diagnosis,
        )
        console.print(d.table())
        worst = max(worst, d.exit_code)
    return worst


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/diagnose-example")))
