"""Shared tolerances, fixtures and the hypothesis profile of the gradwise test suite.

Every tolerance the tests use is stated here, once. Tests read them through the session fixture
`tol` (an instance of `Tolerances`), which keeps them importable from any test directory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# `tests/helpers.py` is imported as `helpers` from every test directory.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

# Gradient checks (float64, centered differences): "great" in the CS231n reading.
GRADCHECK_TOL = 1e-7
# A broken backward must be reported above this ("likely a bug").
GRADCHECK_BUG = 1e-3
# Norm-wise relative error ||a - b|| / ||b|| of gradwise against torch on the same inputs and weights.
ORACLE_RTOL = 1e-6  # float32 vs torch float32
ORACLE_RTOL64 = 1e-10  # float64 vs torch float64
# Loss values (Python floats, accumulated in the scores' dtype).
LOSS_RTOL = 1e-6  # float32
LOSS_RTOL64 = 1e-12  # float64
# Optimizers (float64): golden steps written from the formula differ from the computed ones by
# rounding only; 200-step trajectories against torch.optim, norm-wise relative error.
OPTIM_GOLDEN_RTOL = 1e-12
OPTIM_ORACLE_RTOL = 1e-10
# The same, element-wise (max |a - b| / |b|), where the operation order matches torch's.
OPTIM_ORACLE_ELEMENTWISE_RTOL = 1e-13
# Empirical moments of initializers on ~260k draws: the sampling error of a variance estimate is
# about sqrt(2 / n) ~ 0.3%, so 2% is tight yet never flaky with a fixed seed.
INIT_VAR_RTOL = 0.02
# Whitening in float64 (PCA, ZCA on well-conditioned data): ||cov(white) - I||_max and round trips.
WHITEN_ATOL = 1e-9
# Orthogonality of `init.orthogonal`: ||Q^T Q - I||_max in float64.
ORTHO_ATOL = 1e-12
# Data-parallel training (float64): K ranks' final weights against one process's, max |difference|
# (the sums over a batch split at different points: rounding only, docs/distributed.md).
DISTRIBUTED_ATOL = 1e-12

SEED = 20240521


@dataclass(frozen=True)
class Tolerances:
    gradcheck: float = GRADCHECK_TOL
    gradcheck_bug: float = GRADCHECK_BUG
    oracle: float = ORACLE_RTOL
    oracle64: float = ORACLE_RTOL64
    loss: float = LOSS_RTOL
    loss64: float = LOSS_RTOL64
    optim_golden: float = OPTIM_GOLDEN_RTOL
    optim_oracle: float = OPTIM_ORACLE_RTOL
    optim_oracle_elementwise: float = OPTIM_ORACLE_ELEMENTWISE_RTOL
    init_var: float = INIT_VAR_RTOL
    whiten: float = WHITEN_ATOL
    ortho: float = ORTHO_ATOL
    distributed: float = DISTRIBUTED_ATOL

    def oracle_for(self, dtype: np.dtype | type) -> float:
        """The oracle tolerance for computations in `dtype`."""
        return self.oracle64 if np.dtype(dtype) == np.float64 else self.oracle

    def loss_for(self, dtype: np.dtype | type) -> float:
        return self.loss64 if np.dtype(dtype) == np.float64 else self.loss


settings.register_profile(
    "gradwise",
    deadline=None,
    max_examples=25,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("gradwise")


@pytest.fixture(scope="session")
def tol() -> Tolerances:
    return Tolerances()


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator: every test sees the same stream."""
    return np.random.default_rng(SEED)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Oracle tests run torch on one thread: its small ops are far slower with two threads on a
    busy two-core machine, and the oracle is about values, not speed."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
