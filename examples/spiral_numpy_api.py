"""A two-layer MLP on the CS231n spiral with the lower-level API: no Trainer, the loop by hand.

    python examples/spiral_numpy_api.py

Each step is forward, loss, backward, optimizer step; the same data flow the Trainer runs.
A linear classifier gets only about half of the points right on this set (54% for a Linear(2, 3)
trained by a loop like this one); the MLP fits it.
"""

from __future__ import annotations

import numpy as np

import gradwise as gw
from gradwise.data import make_spiral
from gradwise.layers import Linear, ReLU
from gradwise.losses import L2, SoftmaxCrossEntropy
from gradwise.optim import Adam

gw.manual_seed(0)                                  # every layer's initial weights come from here
X, y = make_spiral(n_per_class=100, n_classes=3, noise=0.2, rng=np.random.default_rng(0))  # (300, 2), (300,)

model = gw.Sequential(Linear(2, 100), ReLU(), Linear(100, 3))
loss_fn = SoftmaxCrossEntropy()
penalty = L2(1e-3)                                 # on the two weight matrices, not the biases
params = model.parameters()
opt = Adam(params, lr=1e-2)

for step in range(1, 1001):                        # full batch: 300 points
    opt.zero_grad()                                # backward accumulates (+=), so clear first
    scores = model(X)                              # (300, 3)
    loss = loss_fn(scores, y) + penalty(params)
    model.backward(loss_fn.backward())             # dL/dscores -> every Parameter.grad
    penalty.backward(params)                       # + lam * W into each weight's grad
    opt.step()
    if step % 200 == 0:
        print(f"step {step:4d}  loss {loss:.4f}")

model.eval()
accuracy = float(np.mean(model(X).argmax(axis=1) == y))
print(f"final training accuracy: {accuracy:.3f}")
