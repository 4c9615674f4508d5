"""Soak test of exact resume: SIGKILL `gradwise train` at random moments, resume, compare.

    python bench/soak_resume.py               # 20 kills, 2 of them followed by damage (~1-2 min)
    python bench/soak_resume.py --quick       # 3 kills, 1 damage (< 30 s); tests/bench/test_soak_quick.py runs it
    python bench/soak_resume.py --kills 50 --damage 5 --seed 3 --workdir /tmp/soak --keep

What it does (``docs/checkpoints.md``):

1. trains a small model (spiral, MLP with dropout, shuffled batches, Adam on a cosine schedule,
   checkpoints after every epoch and, when the config accepts ``[train] checkpoint_every``, every
   few steps) once without interruption: the reference;
2. trains it again as a subprocess and kills it with SIGKILL at `--kills` random moments, each
   drawn uniformly within `--window` seconds of the process announcing itself (by default the
   reference's training time divided by the number of kills, so the kills spread over the whole
   run); they land while it loads a checkpoint, trains, or writes one (writes take most of the
   time of so small a model);
   after every kill it checks that every checkpoint on disk reads back and verifies, then restarts
   it with ``gradwise train --resume RUN_DIR``;
   after `--damage` of the kills (spread over the run, each once two checkpoints exist) it also
   flips one byte in the middle of the newest checkpoint's ``model.safetensors`` before resuming,
   as a bad sector would: the resume must pass over it to the older checkpoint, and keep it as
   ``*.corrupt`` byte for byte;
3. lets the last resume finish and compares: the final weights must equal the reference's bit
   for bit, and so must every column of ``history.csv`` except the wall time.

Exit status 0 when everything holds, 1 otherwise. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout first, whatever is installed

CONFIG = """
[data]
dataset = "spiral"
n_per_class = 100
[model]
layers = [
  {{ type = "Linear", in_features = 2, out_features = 64 }},
  {{ type = "ReLU" }},
  {{ type = "Dropout", p = 0.2 }},
  {{ type = "Linear", in_features = 64, out_features = 3 }},
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
lr = 1e-2
[schedule]
type = "cosine"
[train]
epochs = {epochs}
batch_size = 16
seed = 7
shuffle = true
{checkpoint_every}"""
MARKER = "gradwise: training"  # the CLI's first line, printed before training or resuming


@dataclass
class Soak:
    kills: int = 0
    torn_writes: int = 0  # kills that left a half-written checkpoint directory behind
    checkpoints_verified: int = 0
    latest_steps: list[int] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)  # checkpoint name -> SHA-256 of the damaged weights
    damage_kept: bool = False  # every damaged checkpoint was passed over and kept as *.corrupt
    window: float = 0.0
    failures: list[str] = field(default_factory=list)


def _child_env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"  # the same arithmetic in every process, and a fast start
    return env


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], object]:
    out = open(log, "wb")  # noqa: SIM115 - closed by the caller once the process is gone
    cmd = [sys.executable, "-m", "gradwise", "train", "--no-progress", *args]
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_child_env(), cwd=ROOT), out


def _wait_for_marker(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if MARKER in log.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def _inspect(run: Path, soak: Soak) -> None:
    """After a kill: every checkpoint on disk must read back and verify; `latest` must resolve."""
    from gradwise.training import checkpoint

    ckdir = run / "checkpoints"
    if ckdir.is_dir() and any(p.name.startswith(".tmp-") for p in ckdir.iterdir()):
        soak.torn_writes += 1
    try:
        latest = checkpoint.latest_checkpoint(run)
        for path in checkpoint.list_checkpoints(run):
            if path.name in soak.damaged and _weights_sha(path) == soak.damaged[path.name]:
                continue  # damaged on purpose, not yet passed over by a resume
            checkpoint.load_checkpoint(path)
            soak.checkpoints_verified += 1
    except (ValueError, FileNotFoundError) as e:
        soak.failures.append(f"after kill {soak.kills}: unreadable checkpoint: {e}")
        return
    soak.latest_steps.append(-1 if latest is None else checkpoint.load_checkpoint(latest).global_step)


def _weights_sha(ckpt: Path) -> str | None:
    weights = ckpt / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None


def _damage(run: Path, soak: Soak) -> bool:
    """Flip one byte in the newest checkpoint's weights if an older one exists to fall back to."""
    from gradwise.training import checkpoint
    from gradwise.training.checkpoint.store import order

    try:
        latest = checkpoint.latest_checkpoint(run)
    except ValueError:
        return False
    if latest is None or latest.name in soak.damaged:
        return False
    older = [p for p in checkpoint.list_checkpoints(run) if order(p) < order(latest)]
    if not older:
        return False
    weights = latest / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2 + 4] ^= 0x10
    weights.write_bytes(bytes(data))
    soak.damaged[latest.name] = hashlib.sha256(bytes(data)).hexdigest()
    return True


def _check_damage_kept(run: Path, soak: Soak) -> bool:
    """Every damaged checkpoint was passed over and is kept, byte for byte, as ``*.corrupt``."""
    kept = {p.name: _weights_sha(p) for p in (run / "checkpoints").glob("step-*.corrupt*")}
    ok = True
    for name, sha in soak.damaged.items():
        if not any(k.startswith(f"{name}.corrupt") and v == sha for k, v in kept.items()):
            soak.failures.append(f"the damaged {name} was not kept as {name}.corrupt (found {sorted(kept)})")
            ok = False
    return ok


def _final_weights(run: Path) -> dict[str, object]:
    from safetensors.numpy import load_file

    return load_file(str(run / "checkpoints" / "last.safetensors"))


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def run_soak(kills: int, epochs: int, window: float | None, seed: int, workdir: Path, damage: int = 0) -> Soak:
    import numpy as np

    from gradwise.cli import config as cfgmod

    rng = random.Random(seed)
    every = "checkpoint_every = 5\n" if "checkpoint_every" in cfgmod.SECTIONS["train"] else ""
    cfg = workdir / "soak.toml"
    cfg.write_text(CONFIG.format(epochs=epochs, checkpoint_every=every))
    soak = Soak()

    ref, run = workdir / "reference", workdir / "killed"
    proc, out = _start([str(cfg), "--out", str(ref)], workdir / "reference.log")
    code = proc.wait()
    out.close()  # type: ignore[attr-defined]
    if code != 0:
        soak.failures.append(f"the reference run failed (exit {code}); see {workdir / 'reference.log'}")
        return soak
    if window is None:
        # Each segment then makes window / 2 seconds of progress on average: half the run in all.
        window = json.loads((ref / "metrics.json").read_text())["wall_time"] / max(kills, 1)
    soak.window = window

    args = [str(cfg), "--out", str(run)]
    # Kill numbers after which to damage the newest checkpoint (postponed while there is no older one).
    damage_at = sorted({max(1, round((i + 1) * kills / (damage + 1))) for i in range(min(damage, kills))})
    pending = 0
    segment = 0
    while True:
        log = workdir / f"segment-{segment}.log"
        proc, out = _start(args, log)
        if soak.kills < kills and _wait_for_marker(proc, log, timeout=60):
            try:
                proc.wait(timeout=rng.uniform(0, window))
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL: no handler, no cleanup, no flush
        code = proc.wait()
        out.close()  # type: ignore[attr-defined]
        if code == -9:
            soak.kills += 1
            _inspect(run, soak)
            pending += soak.kills in damage_at
            if pending and _damage(run, soak):
                pending -= 1
        elif code != 0:
            soak.failures.append(f"segment {segment} exited with {code}; see {log}")
            return soak
        else:
            break  # finished
        args = ["--resume", str(run)]
        segment += 1

    if len(soak.damaged) < min(damage, kills):
        soak.failures.append(f"damaged {len(soak.damaged)} of {damage} checkpoints (too few kills after the first two)")
    soak.damage_kept = _check_damage_kept(run, soak)
    a, b = _final_weights(ref), _final_weights(run)
    same = sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
    if not same:
        soak.failures.append("the final weights differ from the uninterrupted run's")
    if _history(ref) != _history(run):
        soak.failures.append("history.csv differs from the uninterrupted run's (wall time aside)")
    return soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 kills on a shorter run (< 30 s)")
    parser.add_argument("--kills", type=int, help="SIGKILLs to deliver (default 20, or 3 with --quick)")
    parser.add_argument(
        "--window", type=float, help="kill within this many seconds of a start (default: training time / kills)"
    )
    parser.add_argument(
        "--damage",
        type=int,
        help="kills after which a byte of the newest checkpoint is flipped (default 2, or 1 with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--workdir", type=Path, help="where to put the runs (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    kills = args.kills if args.kills is not None else (3 if args.quick else 20)
    damage = args.damage if args.damage is not None else (1 if args.quick else 2)
    if kills < 0 or damage < 0:
        parser.error("--kills and --damage must be >= 0")
    epochs = 30 if args.quick else max(300, 15 * kills)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gradwise-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        soak = run_soak(kills, epochs, args.window, args.seed, workdir, damage)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if soak.kills < kills:
        soak.failures.append(f"the run finished after {soak.kills} of {kills} kills; give a smaller --window")
    print(
        f"kills: {soak.kills} within {soak.window:.2f} s of each start "
        f"(during a checkpoint write: {soak.torn_writes})"
    )
    print(
        f"checkpoints verified after kills: {soak.checkpoints_verified}; "
        f"latest step after each kill: {soak.latest_steps}"
    )
    print(
        f"checkpoints damaged after a kill: {len(soak.damaged)} {sorted(soak.damaged)}; "
        f"passed over on resume and kept as *.corrupt: {'yes' if soak.damage_kept else 'NO'}"
    )
    print(f"identical to the uninterrupted run: {'yes' if not soak.failures else 'NO'}")
    for failure in soak.failures:
        print(f"FAILED: {failure}")
    print(f"({time.perf_counter() - start:.1f} s{'; kept ' + str(workdir) if args.keep or args.workdir else ''})")
    return 0 if not soak.failures else 1


if __name__ == "__main__":
    sys.exit(main())
