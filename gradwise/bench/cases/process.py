"""Process-level cases: the time of `import gradwise` and the peak memory (RSS) of a training run.

Both run fresh interpreters (`sys.executable`, this process's environment, so the same gradwise).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from gradwise.bench.context import Context
from gradwise.bench.report import CaseResult, Target

# Modules `import gradwise` must not load (DESIGN.md: numpy and little else).
HEAVY = ("matplotlib", "torch", "scipy", "sklearn", "numba", "optuna", "threadpoolctl", "pandas")

_IMPORT = """
import sys, time
t = time.perf_counter()
import {module}
dt = time.perf_counter() - t
heavy = [m for m in {heavy!r} if m in sys.modules]
print(dt, ",".join(heavy))
"""

# The same small training in both libraries: the MNIST-1D CNN on 3,600 random sequences,
# batch 100, Adam; what a user's process holds at its peak (interpreter, libraries, data, model).
_GRADWISE_TRAIN = """
import numpy as np
from gradwise.bench.cases.conv import mnist1d_cnn
from gradwise.data.loader import DataLoader
from gradwise.losses import SoftmaxCrossEntropy
from gradwise.optim import Adam
from gradwise.training.trainer import Trainer
rng = np.random.default_rng(0)
x = rng.standard_normal((3600, 40), dtype=np.float32); y = rng.integers(0, 10, 3600)
model = mnist1d_cnn(0)
Trainer(model, SoftmaxCrossEntropy(), Adam(model.parameters(), lr=1e-2), metrics=(), progress=False).fit(
    DataLoader(x, y, batch_size=100), epochs={epochs})
"""

_TORCH_TRAIN = """
import numpy as np, torch
torch.set_num_threads({threads})
rng = np.random.default_rng(0)
x = torch.from_numpy(rng.standard_normal((3600, 40), dtype=np.float32)); y = torch.from_numpy(rng.integers(0, 10, 3600))
nn = torch.nn
net = nn.Sequential(nn.Unflatten(1, (1, 40)), nn.Conv1d(1, 25, 5, stride=2, padding=1), nn.ReLU(),
                    nn.Conv1d(25, 25, 3, stride=2, padding=1), nn.ReLU(), nn.Conv1d(25, 25, 3, stride=2, padding=1),
                    nn.ReLU(), nn.Flatten(), nn.Linear(125, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-2); loss_fn = nn.CrossEntropyLoss()
for _ in range({epochs}):
    for s in range(0, 3600, 100):
        opt.zero_grad(); out = loss_fn(net(x[s:s + 100]), y[s:s + 100]); out.backward(); opt.step(); out.item()
"""


def _python(code: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"a child interpreter failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


# Runs a target in this interpreter and writes its peak RSS (kB) to the file named in argv[1]
# when the interpreter exits. VmHWM is the high-water mark of this process's own memory map;
# ru_maxrss (RUSAGE_SELF, or RUSAGE_CHILDREN / wait4 in the parent) would not do: Linux carries
# the parent's high-water mark over fork and exec, so every child of a process that has loaded
# torch would report at least the parent's peak.
_MEASURE = """
import atexit, resource, runpy, sys
out = sys.argv[1]
def _write():
    try:
        with open("/proc/self/status") as f:
            kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is
    with open(out, "w") as f:
        f.write(str(kb))
atexit.register(_write)
if sys.argv[2] == "-m":
    sys.argv = [sys.argv[3], *sys.argv[4:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c"]
    exec(compile(CODE, "<bench>", "exec"), {"__name__": "__main__"})
"""


def peak_rss_mb(target: list[str], cwd: str | None = None, timeout: float = 600) -> float:
    """Peak resident memory (MB) of a fresh interpreter running `target`: ``["-m", module, args...]``
    or ``["-c", code]``. The interpreter's output is discarded; a failure raises with its stderr."""
    with tempfile.TemporaryDirectory(prefix="gradwise-rss-") as tmp:
        out = Path(tmp) / "hwm"
        if target[0] == "-c":
            code = _MEASURE.replace("CODE", repr(target[1]))
            argv = [sys.executable, "-c", code, str(out), "-c"]
        else:
            argv = [sys.executable, "-c", _MEASURE, str(out), *target]
        done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"peak RSS of {' '.join(target[:3])[:60]}...: exit {done.returncode}: "
                               f"{done.stderr.strip()[-2000:]}")
        return int(out.read_text()) / 1024


def import_time(ctx: Context) -> CaseResult:
    n = ctx.pick(2, 7)
    result = CaseResult("import", "`import gradwise` in a fresh interpreter (in-process time, numpy included) "
                        "vs `import numpy` alone", "s", ours="import gradwise",
                        targets=[Target("best import gradwise", "<", 0.3)])
    times: dict[str, list[float]] = {"import gradwise": [], "import numpy": []}
    heavy = ""
    for _ in range(n):  # alternate the two
        for label, module in (("import gradwise", "gradwise"), ("import numpy", "numpy")):
            out = _python(_IMPORT.format(module=module, heavy=HEAVY)).split()
            times[label].append(float(out[0]))
            if module == "gradwise" and len(out) > 1:
                heavy = out[1]
    for label, values in times.items():
        result.add_row(label, values)
    result.extra["best import gradwise"] = min(times["import gradwise"])
    result.extra["best import numpy"] = min(times["import numpy"])
    result.extra["best gradwise minus numpy"] = min(times["import gradwise"]) - min(times["import numpy"])
    result.peer_missing = "an absolute target (no peer)"
    result.notes.append(f"best of {n} fresh interpreters each, alternating; "
                        + (f"`import gradwise` also loaded: {heavy}" if heavy else
                           f"`import gradwise` loaded none of {', '.join(HEAVY)}"))
    return result


def peak_rss(ctx: Context) -> CaseResult:
    epochs = ctx.pick(1, 3)
    result = CaseResult("peak-rss", f"peak RSS of a training run ({epochs} epoch(s) of the MNIST-1D CNN)", "MB",
                        ours="gradwise script")
    with tempfile.TemporaryDirectory(prefix="gradwise-bench-") as tmp:
        cli = ["-m", "gradwise", "train", "--epochs", str(epochs), "--no-progress", "--out", str(Path(tmp) / "run")]
        result.add_row("gradwise train (CLI, default config)", [peak_rss_mb(cli, cwd=tmp)])
    result.add_row("gradwise script", [peak_rss_mb(["-c", _GRADWISE_TRAIN.format(epochs=epochs)])])
    if ctx.torch is None:
        result.peer_missing = ctx.torch_missing
    else:
        code = _TORCH_TRAIN.format(epochs=epochs, threads=ctx.threads)
        result.add_row("PyTorch script", [peak_rss_mb(["-c", code])])
        result.peer = "PyTorch script"
    result.notes.append("VmHWM of each fresh interpreter (its own peak RSS); the scripts train the same CNN on the same 3,600 random "
                        "sequences; the CLI run also writes its run directory and plots")
    return result
