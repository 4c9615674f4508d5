"""The settings every case reads: quick or full, repeats, threads, seed, the optional peers."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from gradwise.bench.timing import sgemm_gflops


@dataclass
class Context:
    """Settings of one worker run.

    `torch` is the imported module, or None when PyTorch is not installed (or `peers` excluded
    it); cases then report gradwise alone. `repeats` is the number of timed rounds per case.
    """

    quick: bool
    repeats: int
    threads: int
    seed: int = 0
    torch: Any | None = None
    torch_missing: str = ""
    _sgemm: list[float] = field(default_factory=list)

    @classmethod
    def create(cls, quick: bool, repeats: int | None, threads: int, seed: int = 0, no_peers: bool = False) -> Context:
        ctx = cls(quick=quick, repeats=repeats if repeats is not None else (1 if quick else 5), threads=threads, seed=seed)
        if ctx.repeats < 1:
            raise ValueError(f"repeats={ctx.repeats} must be >= 1")
        if no_peers:
            ctx.torch_missing = "peers disabled (--no-peers)"
        else:
            ctx.torch, ctx.torch_missing = optional("torch")
        if ctx.torch is not None:
            ctx.torch.set_num_threads(threads)
        return ctx

    def sgemm(self) -> float:
        """The float32 GEMM rate (GFLOP/s, 1024^3, best call), measured once per worker and
        refreshed by `remeasure_sgemm`; the best of all measurements."""
        if not self._sgemm:
            self.remeasure_sgemm()
        return max(self._sgemm)

    def remeasure_sgemm(self) -> None:
        self._sgemm.append(sgemm_gflops(size=512 if self.quick else 1024, budget_s=0.05 if self.quick else 0.3))

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


def optional(module: str) -> tuple[Any | None, str]:
    """(the module, "") when it imports, else (None, why not): the optional peers of the suite."""
    try:
        return importlib.import_module(module), ""
    except ImportError as err:
        return None, f"{module} is not installed ({err}); pip install 'gradwise[bench]'"
