"""The pure parts of `gradwise.bench`: medians, ratios, targets, the report, FLOP counts, the
worker environments, and the cases' gradwise-alone path when a peer library is missing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gradwise.bench import machine, runner
from gradwise.bench.cases import CASES, load
from gradwise.bench.cases import mlp as mlp_cases
from gradwise.bench.cases.optim import implementation_options, mlp_shapes
from gradwise.bench.context import Context
from gradwise.bench.report import CaseResult, Target, format_case, format_comparison, format_summary
from gradwise.bench.timing import (Run, median, median_index, ratio, steadiness_probe, steadiness_summary,
                                   time_interleaved)


def test_median_ratio_and_median_index() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert median_index([5.0, 1.0, 3.0]) == 2
    assert median_index([4.0, 1.0, 2.0, 3.0]) == 2  # the lower middle: 2.0
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(None, 4.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None
    with pytest.raises(ValueError, match="median of no values"):
        median([])


def test_time_interleaved_runs_round_robin() -> None:
    order: list[str] = []
    runs = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 3,
                            warmup={"a": lambda: order.append("wa")})
    assert order == ["wa", "a", "b", "a", "b", "a", "b"]
    assert [len(r) for r in runs.values()] == [3, 3]
    with pytest.raises(ValueError, match="repeats=0"):
        time_interleaved({"a": lambda: None}, 0)


def test_run_disturbed_flag() -> None:
    assert Run(1.0, 0.5).disturbed and not Run(1.0, 0.05).disturbed and not Run(1.0, None).disturbed


@pytest.mark.parametrize(("op", "value", "met"), [("<=", 0.7, True), ("<=", 0.71, False), ("<", 0.7, False),
                                                  (">=", 0.7, True), (">=", 0.69, False)])
def test_target_met(op: str, value: float, met: bool) -> None:
    assert Target("ratio", op, 0.7).met(value) is met


def test_target_unmeasured_and_bad_op() -> None:
    assert Target("ratio", "<=", 0.7).met(None) is None
    assert Target("ratio", "<=", 0.7).met(float("nan")) is None
    with pytest.raises(ValueError, match="op='=='"):
        Target("ratio", "==", 1.0)


def _case() -> CaseResult:
    r = CaseResult("mlp-b128", "MLP", "s/epoch", ours="gw", peer="pt", targets=[Target("ratio", "<=", 0.7)])
    r.add_row("gw", [2.0, 1.0, 3.0], [False, True, False])
    r.add_row("pt", [1.0, 1.0, 1.0])
    r.extra["gemm_fraction"] = 0.5
    r.targets.append(Target("gemm_fraction", ">=", 0.7))
    r.phases = {"forward": 0.75, "backward": 0.25}
    r.phases_of = "hand loop"
    return r


def test_case_result_ratio_checks_and_json_round_trip() -> None:
    r = _case()
    assert r.ratio == 2.0
    assert [(t.label(), v, m) for t, v, m in r.checks()] == [("ratio <= 0.7", 2.0, False),
                                                              ("gemm_fraction >= 0.7", 0.5, False)]
    d = r.to_dict()
    assert d["ratio"] == 2.0 and d["medians"] == {"gw": 2.0, "pt": 1.0}
    assert d["checks"][0] == {"target": "ratio <= 0.7", "value": 2.0, "met": False}
    back = CaseResult.from_dict(d)
    assert back.ratio == 2.0 and back.targets == r.targets and back.busy == r.busy
    with pytest.raises(ValueError, match="no runs"):
        r.add_row("empty", [])


def test_format_case_and_summary() -> None:
    r = _case()
    text = "\n".join(format_case(r))
    assert "ratio gw / pt: 2" in text
    assert "target ratio <= 0.7: 2 -> NOT met" in text
    assert "1*" in text  # the disturbed run is marked
    assert "forward" in text and "75.0 %" in text
    summary = format_summary([r])
    assert summary[0].split() == ["case", "unit", "gradwise", "peer", "ratio", "paired", "target", "value",
                                  "verdict"]
    assert summary[2].split()[:6] == ["mlp-b128", "s/epoch", "2", "1", "2", "2"]
    assert "paired ratio (median of the per-round ratios): 2" in text
    assert summary[3].split() == ["gemm_fraction", ">=", "0.7", "0.5", "NOT", "met"]


def test_paired_ratio_pairs_the_runs_of_one_round() -> None:
    # Round 2 was a slow spell for both (3 s each); the medians take gradwise's from a fast round
    # and PyTorch's from the slow one, the pairs do not.
    r = CaseResult("c", "c", "s", ours="gw", peer="pt")
    r.add_row("gw", [1.0, 3.0, 1.1])
    r.add_row("pt", [1.0, 3.0, 3.0])
    assert r.ratio == pytest.approx(1.1 / 3.0)
    assert r.paired_ratio == pytest.approx(1.0)
    assert r.to_dict()["paired_ratio"] == pytest.approx(1.0)
    r.add_row("pt", [1.0, 3.0])  # unequal rows cannot be paired
    assert r.paired_ratio is None
    alone = CaseResult("c", "c", "s", ours="gw")
    alone.add_row("gw", [1.0])
    assert alone.paired_ratio is None


def test_steadiness_summary_flags_a_spread_over_a_quarter() -> None:
    assert steadiness_summary([]) == ("unknown", False)
    line, unsteady = steadiness_summary([100.0, 110.0, 120.0])
    assert line == "100 / 110 / 120 GFLOP/s (min / median / max of 3), spread 20%" and not unsteady
    assert steadiness_summary([90.0, 150.0, 180.0])[1]
    assert steadiness_probe(size=64, calls=3) > 0


def test_gradwise_alone_and_comparison_columns() -> None:
    alone = CaseResult("import", "import", "s", ours="gw", peer_missing="torch is not installed")
    alone.add_row("gw", [0.2])
    text = "\n".join(format_case(alone))
    assert "gradwise alone: torch is not installed" in text and "ratio" not in text.split("gradwise alone")[0]
    cmp_lines = format_comparison({"as set": [_case(), alone], "unset": [_case()]})
    assert cmp_lines[0].split() == ["case", "as", "set", "unset"]
    assert "ratio 2.00" in cmp_lines[2] and cmp_lines[3].split() == ["import", "0.2", "s", "-"]


def test_epoch_flops_counts_the_products_computed() -> None:
    # 784-512-512-10 over 60,000 samples: forward + weight gradients + input gradients.
    macs = 784 * 512 + 512 * 512 + 512 * 10
    assert mlp_cases.epoch_flops(60_000, first_input_grad=True) == 2.0 * 60_000 * 3 * macs
    assert mlp_cases.epoch_flops(60_000, first_input_grad=False) == 2.0 * 60_000 * (3 * macs - 784 * 512)
    assert mlp_cases.epoch_flops(10, True, sizes=(2, 3)) == 2.0 * 10 * 3 * 6


def test_first_input_grad_computed_follows_backward() -> None:
    # The real model skips its first layer's input gradient when asked (input_grad=False, as the
    # Trainer asks), and the parameters' gradients are left zeroed.
    model = mlp_cases.build(0)
    assert mlp_cases.first_input_grad_computed(model) is False
    assert all(not p.grad.any() for p in model.parameters())

    class Skipping:
        def forward(self, x: np.ndarray) -> np.ndarray:
            return np.zeros((len(x), 10), dtype=np.float32)

        def backward(self, g: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
            return g @ np.zeros((10, 784), dtype=np.float32) if input_grad else None

        def zero_grad(self) -> None:
            pass

    class Computing(Skipping):
        def backward(self, g: np.ndarray, *, input_grad: bool = True) -> np.ndarray:
            return g @ np.zeros((10, 784), dtype=np.float32)

    assert mlp_cases.first_input_grad_computed(Skipping()) is False
    assert mlp_cases.first_input_grad_computed(Computing()) is True


def test_optimizer_options_found_by_signature() -> None:
    class WithOptions:
        def __init__(self, params: list, lr: float = 1e-3, fused: bool = False, flat_buffer: bool | None = None,
                     momentum: float = 0.0) -> None:
            pass

    class Without:
        def __init__(self, params: list, lr: float = 1e-3) -> None:
            pass

    assert implementation_options(WithOptions) == ["fused", "flat_buffer"]
    assert implementation_options(Without) == []
    assert mlp_shapes((3, 4, 2)) == [(4, 3), (4,), (2, 4), (2,)]
    assert sum(int(np.prod(s)) for s in mlp_shapes((3072, 2048, 2048, 10))) == 10_510_346


def test_environments_and_worker_env() -> None:
    assert runner.environments("both", {}) == [("environment as is (OpenBLAS tuning vars unset)", False)]
    tuned = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512"}
    both = runner.environments("both", tuned)
    assert [u for _, u in both] == [False, True]
    assert "OPENBLAS_CORETYPE=Haswell" in both[0][0]
    assert runner.environments("unset", tuned) == [both[1]]
    assert runner.environments("current", tuned) == [both[0]]
    env = machine.worker_env(3, unset_openblas=True, base={**tuned, "PATH": "/bin"})
    assert {v: env[v] for v in machine.THREAD_VARS} == dict.fromkeys(machine.THREAD_VARS, "3")
    assert "OPENBLAS_CORETYPE" not in env and env["PATH"] == "/bin"
    assert machine.worker_env(1, unset_openblas=False, base=tuned)["OPENBLAS_L2_SIZE"] == "512"
    with pytest.raises(ValueError, match="threads=0"):
        machine.worker_env(0, False, {})


def test_check_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in machine.THREAD_VARS:
        monkeypatch.setenv(var, "2")
    machine.check_threads(2)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")
    with pytest.raises(RuntimeError, match="expected 2 threads.*MKL_NUM_THREADS"):
        machine.check_threads(2)


def test_unknown_case_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from gradwise.cli.__main__ import main

    assert main(["bench", "--case", "nope"]) == 2
    assert "unknown nope" in capsys.readouterr().err
    assert main(["bench", "--threads", "0"]) == 2
    assert main(["bench", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in CASES)
    with pytest.raises(ValueError, match="unknown case"):
        load("nope")


def test_sklearn_case_without_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlp_cases, "optional", lambda name: (None, f"{name} is not installed (test)"))
    result = mlp_cases.sklearn_mlp(Context.create(quick=True, repeats=1, threads=1, no_peers=True))
    assert result.peer is None and result.ratio is None
    assert list(result.rows) == ["gradwise Trainer"]
    assert "scikit-learn is not installed" in "\n".join(format_case(result))


def test_epoch_case_without_torch() -> None:
    ctx = Context.create(quick=True, repeats=1, threads=1, no_peers=True)
    assert ctx.torch is None
    result = load("cnn-mnist1d")(ctx)
    assert result.peer is None and result.peer_missing == "peers disabled (--no-peers)"
    assert set(result.rows) == {"gradwise Trainer", "gradwise hand loop"}
    assert result.median_of(result.ours) > 0


def test_import_gradwise_loads_neither_the_bench_nor_its_peers() -> None:
    code = ("import sys, gradwise; bad = [m for m in ('gradwise.bench', 'torch', 'sklearn', 'threadpoolctl') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
