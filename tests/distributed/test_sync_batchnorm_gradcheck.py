"""The synchronized BatchNorm's own backward (the reduced sums of g and g * x_hat), gradient-checked
in float64 in a single process (a Communicator of one rank: every all-reduce is the identity)."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.core import Sequential
from gradwise.diagnostics import check_layer
from gradwise.layers import BatchNorm1d, BatchNorm2d

pytest.importorskip("mpi4py", reason="SyncBatchNorm needs mpi4py (pip install 'gradwise[mpi]')")

from gradwise.distributed import Communicator, convert_sync_batchnorm  # noqa: E402


@pytest.mark.parametrize("layer, shape", [(BatchNorm1d(5), (8, 5)), (BatchNorm1d(3), (6, 3, 4)), (BatchNorm2d(3), (4, 3, 5, 5))])
def test_sync_batchnorm_backward_passes_a_float64_gradient_check(layer, shape, tol):
    model = Sequential(layer).astype(np.float64)
    assert convert_sync_batchnorm(model, Communicator()) == 1
    assert type(model[0]).__name__.startswith("SyncBatchNorm")
    rng = np.random.default_rng(0)
    model[0].weight.data[...] = rng.uniform(0.5, 1.5, model[0].weight.shape)
    model[0].bias.data[...] = rng.standard_normal(model[0].bias.shape)
    report = check_layer(model, rng.standard_normal(shape))
    assert report.passed, report
    assert report.max_rel_error < tol.gradcheck
