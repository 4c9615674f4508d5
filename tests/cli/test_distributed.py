"""`mpiexec -n 2 gradwise train`: a rank killed mid-run takes the job down (no hang), a hung rank
is caught by the collectives' deadline, and `--resume` continues with nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mpi_helpers import alive, env, mpiexec_or_skip, rank_pid, run, start, wait_for
from safetensors.numpy import load_file

from gradwise.cli.__main__ import main
from gradwise.training.rundir import read_csv_rows

# The default MLP (examples/mnist1d_mlp.toml) for a few epochs, a checkpoint every 10 steps.
CONFIG = """
[data]
dataset = "mnist1d"
val = 0.1
[model]
layers = [
  {{ type = "Linear", in_features = 40, out_features = 100 }},
  {{ type = "ReLU" }},
  {{ type = "Linear", in_features = 100, out_features = 100 }},
  {{ type = "ReLU" }},
  {{ type = "Linear", in_features = 100, out_features = 10 }},
]
[loss]
type = "SoftmaxCrossEntropy"
[optimizer]
type = "Adam"
lr = 1e-2
[train]
epochs = {epochs}
batch_size = 100
seed = 42
checkpoint_every = 10
distributed_timeout = {timeout}
"""


def write_config(tmp_path: Path, epochs: int, timeout: float) -> Path:
    path = tmp_path / "mlp.toml"
    path.write_text(CONFIG.format(epochs=epochs, timeout=timeout))
    return path


def train_command(*args: str) -> list[str]:
    return [mpiexec_or_skip(), "-n", "2", sys.executable, "-m", "gradwise", "train", "--no-progress", *args]


def first_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "latest").is_file()


def interrupt(tmp_path: Path, config: Path, run_dir: Path, how: signal.Signals) -> tuple[int, str, float]:
    """Start a 2-rank run, send `how` to rank 1 once a checkpoint exists; the launcher's exit
    code, its output (stdout and stderr) and the seconds it took to end after the signal."""
    job = start(train_command(str(config), "--out", str(run_dir)), cwd=tmp_path)
    victim = None
    try:
        wait_for(lambda: first_checkpoint(run_dir) or job.poll() is not None, 60, "the first checkpoint")
        assert job.poll() is None, "the run ended before it could be interrupted: " + job.stderr.read()
        wait_for(lambda: rank_pid(job.pid, 1) is not None, 10, "rank 1's process")
        victim = rank_pid(job.pid, 1)
        assert victim is not None
        os.kill(victim, how)
        sent = time.monotonic()
        stdout, stderr = job.communicate(timeout=60)  # no hang: the job ends on its own
        return job.returncode, stdout + stderr, time.monotonic() - sent
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
        if victim is not None and alive(victim):
            os.kill(victim, signal.SIGKILL)


def final_state(run_dir: Path) -> tuple[dict, list]:  # type: ignore[type-arg]
    history = [{k: v for k, v in row.items() if k != "time"} for row in read_csv_rows(run_dir / "history.csv")]
    return load_file(run_dir / "checkpoints" / "last.safetensors"), history


def test_a_killed_rank_ends_the_job_and_resume_loses_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, epochs=8, timeout=30)
    reference = tmp_path / "reference"
    done = run(train_command(str(config), "--out", str(reference)), timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    code, output, seconds = interrupt(tmp_path, config, killed, signal.SIGKILL)
    # MPICH's launcher sees the dead rank and ends the others at once, naming the signal.
    assert code != 0 and "BAD TERMINATION" in output and "signal 9" in output, output
    assert not (killed / "metrics.json").is_file()  # it really was stopped mid-run

    resumed = run(train_command("--resume", str(killed)), timeout=120, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stdout
    weights, history = final_state(killed)
    expected_weights, expected_history = final_state(reference)
    assert weights.keys() == expected_weights.keys()
    for key, value in expected_weights.items():  # bit for bit: the same K, the same steps
        assert (weights[key] == value).all(), key
    assert history == expected_history


def test_a_hung_rank_is_stopped_by_the_deadline(tmp_path: Path) -> None:
    config = write_config(tmp_path, epochs=30, timeout=2)
    code, output, seconds = interrupt(tmp_path, config, tmp_path / "hung", signal.SIGSTOP)
    assert code != 0
    assert "did not complete within 2 s: another rank has died, hangs, or skipped it" in output, output
    assert "gradwise: error: rank 0 of 2: the gradient all-reduce of optimizer step" in output


def test_ensembles_and_histograms_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in (("seeds", "2"), ("histogram_epochs", "[1]")):
        config = write_config(tmp_path, epochs=1, timeout=30)
        out = tmp_path / f"never-{key}"
        assert main(["train", str(config), "--distributed", "--out", str(out), "--set", f"train.{key}={value}"]) == 2
        assert f"[train] {key} does not combine with distributed training" in capsys.readouterr().err
        assert not out.exists()


def test_bad_distributed_keys_are_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, epochs=1, timeout=30)
    for assignment, message in (
        ("train.distributed_timeout=0", "[train] distributed_timeout = 0 must be a number of seconds > 0"),
        ("train.sync_batchnorm='yes'", "[train] sync_batchnorm = 'yes' must be true or false"),
    ):
        args = ["train", str(config), "--distributed", "--out", str(tmp_path / "never"), "--set", assignment]
        assert main(args) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_an_mpi_launch_without_mpi4py_is_a_config_error(tmp_path: Path) -> None:
    # As if mpiexec -n 2 had started us (its environment) in an environment without mpi4py.
    config = write_config(tmp_path, epochs=1, timeout=30)
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "from gradwise.cli.__main__ import main\n"
        f"sys.exit(main(['train', {str(config)!r}, '--out', {str(tmp_path / 'never')!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**env(), "PMI_SIZE": "2", "PMI_RANK": "0"},
    )
    assert result.returncode == 2, result.stderr
    assert "started by an MPI launcher with 2 processes" in result.stderr
    assert "pip install 'gradwise[mpi]'" in result.stderr
    assert not (tmp_path / "never").exists()
