"""Tests of gradwise/diagnostics/gradcheck.py: the gradient checker must pass correct backward
passes, catch wrong ones, and leave the model alone."""

from __future__ import annotations

import numpy as np
import pytest

from gradwise.core import Layer, Parameter, Sequential
from gradwise.diagnostics import GradCheckReport, check_layer, check_model, numerical_gradient, rel_error
from gradwise.diagnostics.gradcheck import TensorCheck, reading
from gradwise.layers import Linear, Tanh
from gradwise.losses import MulticlassHinge, SoftmaxCrossEntropy


class Affine(Layer):
    """y = x W^T + b, with an optional deliberate mistake in backward."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, mistake: str | None = None) -> None:
        super().__init__()
        self.weight = Parameter(rng.standard_normal((n_out, n_in)))
        self.bias = Parameter(rng.standard_normal(n_out))
        self.mistake = mistake
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return x @ self.weight.data.T + self.bias.data

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x, self._x = self._x, None
        grad_w = grad_out.T @ x
        grad_x = grad_out @ self.weight.data
        if self.mistake == "scaled":
            grad_w = 1.01 * grad_w
        elif self.mistake == "transposed":
            grad_w = grad_w.T
        elif self.mistake == "input":
            grad_x = 1.01 * grad_x
        self.weight.grad += grad_w
        self.bias.grad += grad_out.sum(axis=0)
        return grad_x


class Counting(Affine):
    """An Affine that counts its forward calls in a class attribute (shared by deep copies)."""

    calls = [0]

    def forward(self, x: np.ndarray) -> np.ndarray:
        Counting.calls[0] += 1
        return super().forward(x)


class NoisyScale(Layer):
    """y = 2 x * mask * w with a fresh random mask each forward, drawn from `self.<rng_attr>`."""

    def __init__(self, n: int, rng_attr: str = "rng") -> None:
        super().__init__()
        self.weight = Parameter(np.linspace(0.5, 1.5, n))
        self.rng_attr = rng_attr
        setattr(self, rng_attr, np.random.default_rng(0))
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        mask = getattr(self, self.rng_attr).random(x.shape) < 0.5
        self._cache = (x, mask)
        return 2 * x * mask * self.weight.data

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x, mask = self._cache
        self._cache = None
        self.weight.grad += (2 * grad_out * mask * x).sum(axis=0)
        return 2 * grad_out * mask * self.weight.data


# ------------------------------------------------------------------------------------- rel_error


def test_rel_error_basics():
    a = np.array([1.0, -2.0, 3.0])
    assert rel_error(a, a) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(a, -a) == 1.0
    assert rel_error(a, np.zeros(3)) == 1.0
    assert rel_error(a, 2 * a) == pytest.approx(1 / 3, rel=1e-15)
    assert rel_error(a, 2 * a) == rel_error(2 * a, a)
    assert rel_error(1e-20 * a, 2e-20 * a) == pytest.approx(1 / 3, rel=1e-12)  # scale-free
    assert rel_error(a.reshape(3, 1), a.astype(np.float32)) == 0.0  # shapes and dtypes are flattened away


@pytest.mark.parametrize(
    ("err", "words"),
    [
        (1e-9, "great"),
        (5e-7, "acceptable near kinks"),
        (1e-4, "suspicious"),
        (1e-3, "likely a bug"),
        (0.5, "likely a bug"),
    ],
)
def test_reading_thresholds(err, words):
    assert reading(err) == words
    assert TensorCheck("w", err, 0.0, 1, 1).reading == words


def test_numerical_gradient_of_a_cubic_and_restores_the_array(tol):
    a = np.linspace(-2, 2, 12).reshape(3, 4)
    before = a.copy()
    grad = numerical_gradient(lambda: float(np.sum(a**3)), a, np.arange(a.size))
    assert rel_error(grad, 3 * before.ravel() ** 2) < tol.gradcheck
    np.testing.assert_array_equal(a, before)
    some = numerical_gradient(lambda: float(np.sum(a**3)), a, np.array([0, 5, 11]))
    np.testing.assert_allclose(some, grad[[0, 5, 11]], rtol=1e-12)


# ----------------------------------------------------------------------------------- check_layer


def test_a_correct_layer_passes(rng, tol):
    report = check_layer(Affine(5, 4, rng), rng.standard_normal((6, 5)), max_entries=None)
    assert isinstance(report, GradCheckReport)
    assert [c.name for c in report.checks] == ["input", "weight", "bias"]
    assert report.passed and report.max_rel_error < tol.gradcheck


@pytest.mark.parametrize(("mistake", "wrong"), [("scaled", "weight"), ("transposed", "weight"), ("input", "input")])
def test_a_broken_layer_fails_and_the_report_names_the_tensor(rng, tol, mistake, wrong):
    report = check_layer(Affine(4, 4, rng, mistake=mistake), rng.standard_normal((6, 4)), max_entries=None)
    assert not report.passed
    assert report[wrong].rel_error > tol.gradcheck_bug
    assert report[wrong].reading == "likely a bug"
    for c in report.checks:
        if c.name != wrong:
            assert c.rel_error < tol.gradcheck, c
    line = next(line for line in str(report).splitlines() if line.startswith(wrong))
    assert "likely a bug" in line
    assert str(report).splitlines()[-1].startswith("FAILED")


def test_off_by_one_percent_is_about_half_a_percent(rng):
    # ||1.01 g - g|| / (||1.01 g|| + ||g||) = 0.01 / 2.01
    report = check_layer(Affine(3, 2, rng, mistake="scaled"), rng.standard_normal((5, 3)), max_entries=None)
    assert report["weight"].rel_error == pytest.approx(0.01 / 2.01, rel=1e-5)


@pytest.mark.parametrize("max_entries", [1, 7, 30])
def test_sampling_checks_exactly_max_entries(rng, max_entries):
    Counting.calls[0] = 0
    layer = Counting(20, 10, rng)
    report = check_layer(layer, rng.standard_normal((4, 20)), max_entries=max_entries)
    sizes = {"input": 80, "weight": 200, "bias": 10}
    for c in report.checks:
        assert c.total == sizes[c.name]
        assert c.checked == min(max_entries, sizes[c.name])
    # one forward for the upstream shape, one for the analytic gradient, two per checked entry
    assert Counting.calls[0] == 2 + 2 * sum(c.checked for c in report.checks)
    assert report.passed


def test_max_entries_none_checks_everything(rng):
    report = check_layer(Affine(6, 3, rng), rng.standard_normal((2, 6)), max_entries=None)
    assert [(c.checked, c.total) for c in report.checks] == [(12, 12), (18, 18), (3, 3)]


def test_the_checked_layer_is_unchanged(rng):
    layer = Linear(5, 3, rng=rng)  # float32
    params = layer.parameters()
    values = [p.data.copy() for p in params]
    x = rng.standard_normal((4, 5)).astype(np.float32)
    x_before = x.copy()
    report = check_layer(layer, x)
    assert report.passed
    assert layer.parameters() == params
    for p, v in zip(layer.parameters(), values, strict=True):
        assert p.dtype == np.float32 and p.grad.dtype == np.float32
        np.testing.assert_array_equal(p.data, v)
        assert not p.grad.any()
    np.testing.assert_array_equal(x, x_before)
    assert x.dtype == np.float32
    assert layer._x is None  # no forward ran on the original


def test_check_model_leaves_the_model_unchanged(rng):
    model = Sequential(Linear(4, 3, rng=rng), Tanh(), Linear(3, 2, rng=rng))
    state = model.state_dict()
    check_model(model, SoftmaxCrossEntropy(), rng.standard_normal((5, 4)), rng.integers(0, 2, size=5))
    assert model.dtype == np.float32
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
        assert v.dtype == np.float32
    assert all(not p.grad.any() for p in model.parameters())


# ------------------------------------------------------------------------------------ randomness


@pytest.mark.parametrize("wrap", [False, True], ids=["layer", "inside-sequential"])
def test_random_masks_are_frozen_during_the_check(rng, tol, wrap):
    layer: Layer = NoisyScale(6)
    if wrap:
        layer = Sequential(Linear(3, 6, rng=rng), layer)
    # the check runs on a copy: the layer's own generator does not advance
    original = [m.rng.bit_generator.state for _, m in layer.named_modules() if "rng" in m.__dict__]
    report = check_layer(layer, rng.standard_normal((5, 3 if wrap else 6)), max_entries=None)
    assert report.passed and report.max_rel_error < tol.gradcheck, str(report)
    assert [m.rng.bit_generator.state for _, m in layer.named_modules() if "rng" in m.__dict__] == original


def test_a_generator_not_named_rng_is_not_frozen_and_the_check_fails(rng, tol):
    # The contrast that shows the freezing matters: the masks change between evaluations.
    report = check_layer(NoisyScale(6, rng_attr="noise"), rng.standard_normal((5, 6)), max_entries=None)
    assert not report.passed and report.max_rel_error > tol.gradcheck_bug


# --------------------------------------------------------------------------------------- report


def test_report_text_has_the_reading_words(rng):
    good = str(check_layer(Affine(3, 2, rng), rng.standard_normal((4, 3))))
    lines = good.splitlines()
    for word in ("tensor", "rel. error", "max abs", "checked", "reading"):
        assert word in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["input", "weight", "bias"]
    assert all(line.rstrip().endswith("great") for line in lines[1:4])
    assert "6/6" in lines[2]
    assert lines[-1].startswith("PASSED: largest relative error") and "tolerance 1e-07" in lines[-1]
    bad = str(check_layer(Affine(3, 3, rng, mistake="transposed"), rng.standard_normal((4, 3))))
    assert "likely a bug" in bad and bad.splitlines()[-1].startswith("FAILED")


def test_report_lookup_of_an_unknown_tensor_lists_the_names(rng):
    report = check_layer(Affine(3, 2, rng), rng.standard_normal((4, 3)))
    with pytest.raises(KeyError, match=r"no tensor named 'gamma'.*\['input', 'weight', 'bias'\]"):
        report["gamma"]


def test_tolerance_decides_passed(rng):
    x = rng.standard_normal((4, 3))
    strict = check_layer(Affine(3, 2, rng), x, tolerance=0.0)
    assert not strict.passed and strict.tolerance == 0.0
    assert check_layer(Affine(3, 2, rng, mistake="scaled"), x, tolerance=1e-2).passed


def test_empty_report_passes():
    report = GradCheckReport()
    assert report.passed and report.max_rel_error == 0.0


def test_frozen_parameters_are_not_checked(rng):
    layer = Affine(3, 2, rng)
    layer.bias.requires_grad = False
    report = check_layer(layer, rng.standard_normal((4, 3)))
    assert [c.name for c in report.checks] == ["input", "weight"]


# ---------------------------------------------------------------------------------- check_model


def test_check_model_names_parameters_and_checks_input_on_request(rng, tol):
    model = Linear(4, 3, rng=rng)
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, size=6)
    report = check_model(model, SoftmaxCrossEntropy(), x, y)
    assert [c.name for c in report.checks] == ["weight", "bias"]
    with_input = check_model(model, SoftmaxCrossEntropy(), x, y, check_input=True)
    assert [c.name for c in with_input.checks] == ["input", "weight", "bias"]
    assert with_input.max_rel_error < tol.gradcheck


def test_a_gradient_that_is_zero_by_symmetry_is_not_a_failure(tol):
    # Every wrong class violates a margin of 100 and the labels are balanced: each bias gets +1 from
    # the samples of other classes and -(C - 1) from its own, exactly 0 in total. The numerical
    # gradient is pure rounding noise, which must not read as a relative error of 1.
    c, per_class = 4, 2
    model = Linear(5, c, rng=np.random.default_rng(1), dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((c * per_class, 5))
    y = np.tile(np.arange(c), per_class)
    loss = MulticlassHinge(margin=100.0, p=1)

    twin = Linear(5, c, rng=np.random.default_rng(1), dtype=np.float64)
    loss.forward(twin.forward(x), y)
    twin.backward(loss.backward())
    assert np.all(twin.bias.grad == 0.0)
    assert twin.weight.grad.any()

    report = check_model(model, loss, x, y, max_entries=None)
    assert report.passed, str(report)
    assert report["bias"].rel_error == 0.0
    assert report["weight"].rel_error < tol.gradcheck


def test_check_model_takes_the_tuple_input_of_a_parallel_model():
    from gradwise.core import Sequential
    from gradwise.layers import Embedding, Linear, Parallel, Tanh
    from gradwise.losses import SoftmaxCrossEntropy

    rng = np.random.default_rng(0)
    model = Sequential(
        Parallel(Sequential(Embedding(7, 3, rng=rng)), Sequential(Linear(4, 5, rng=rng), Tanh())),
        Linear(8, 3, rng=rng),
    )
    x = (rng.integers(0, 7, 6), rng.standard_normal((6, 4)))
    y = rng.integers(0, 3, 6)
    report = check_model(model, SoftmaxCrossEntropy(), x, y, check_input=True)
    assert report.passed, str(report)
    names = [c.name for c in report.checks]
    assert "input[1]" in names and "input[0]" not in names  # indices are not differentiable
    assert "0.0.0.weight" in names


def test_check_model_checks_the_parameters_on_the_path_training_takes(rng, tol):
    """Without check_input the model's backward is told input_grad=False, as the Trainer tells it;
    with check_input it is not, and the input gradient is checked."""
    seen: list[bool] = []  # shared by the deep copies check_model makes

    class FlagProbe(Layer):
        def forward(self, x):
            return x

        def backward(self, grad_out, *, input_grad=True):
            seen.append(input_grad)
            return grad_out if input_grad else None

    model = Sequential(FlagProbe(), Linear(4, 3, rng=rng))
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, size=6)
    report = check_model(model, SoftmaxCrossEntropy(), x, y)
    assert [c.name for c in report.checks] == ["1.weight", "1.bias"]
    assert report.max_rel_error < tol.gradcheck and seen == [False]
    seen.clear()
    with_input = check_model(model, SoftmaxCrossEntropy(), x, y, check_input=True)
    assert [c.name for c in with_input.checks] == ["input", "1.weight", "1.bias"]
    assert with_input.max_rel_error < tol.gradcheck and seen == [True]


@pytest.mark.parametrize("layout", ["F", "strided"])
def test_numerical_gradient_perturbs_arrays_of_any_layout_in_place(layout):
    # A layer's output may be Fortran-ordered (Linear returns (W x^T)^T); a reshape of such an array
    # is a copy, and perturbing a copy would give a zero numerical gradient.
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 5))
    a = np.asfortranarray(base) if layout == "F" else rng.standard_normal((6, 10))[:, ::2]
    weights = rng.standard_normal(a.shape)
    idx = np.arange(a.size)
    before = a.copy()
    num = numerical_gradient(lambda: float((weights * a).sum()), a, idx)
    np.testing.assert_allclose(num, weights.reshape(-1), rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(a, before)


def test_check_layer_passes_on_a_fortran_ordered_input():
    layer = Linear(5, 3).astype(np.float64)
    x = np.asfortranarray(np.random.default_rng(1).standard_normal((4, 5)))
    report = check_layer(layer, x)
    assert report.passed, report
