"""Two worker processes share one study in a real PostgreSQL server (the multi-machine path).

The server is started from the OS packages (``initdb`` + ``pg_ctl``; ``.ci/run`` installs them
when missing) into a temporary directory, on a free port; the test skips, saying why, where the
binaries cannot be found. PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` (or ``nobody``) user through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import cli, cli_env

pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is missing (pip install 'psycopg[binary]')")


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin")
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        runuser = shutil.which("runuser")
        if user is None or runuser is None:
            pytest.skip("running as root, and no postgres/nobody user with runuser to start PostgreSQL as")
        prefix = [runuser, "-u", user, "--"]
    base = Path(tempfile.mkdtemp(prefix="gradwise-pg-"))
    if prefix:
        os.chown(base, pwd.getpwnam(prefix[2]).pw_uid, -1)
    data, port = base / "data", _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)  # noqa: E731
    made = run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    assert made.returncode == 0, made.stderr
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "60", "start")
    assert started.returncode == 0, started.stderr + (base / "log").read_text(errors="replace")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_two_worker_processes_share_one_postgresql_study(
    postgres_url: str, search_config: Callable[..., Path], tmp_path: Path
) -> None:
    import optuna
    from optuna.trial import TrialState

    config = search_config()
    # Two "machines": each its own process and search directory, one study in the database.
    procs = [
        subprocess.Popen(
            cli(str(config), "--trials", "4", "--storage", postgres_url, "--out", str(tmp_path / f"m{k}"), "--quiet"),
            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for k in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    study = optuna.load_study(study_name="spiral_search", storage=postgres_url)
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) == 4 and len({t.number for t in done}) == 4
    assert all(t.user_attrs.get("surplus") for t in study.trials if t.state == TrialState.FAIL)
    for t in done:  # every result is in the database and its run directory on the machine that ran it
        assert t.value is not None and (Path(t.user_attrs["run_dir"]) / "metrics.json").is_file()
    # Each machine's report lists every trial of the study, its own and the other's.
    for k in range(2):
        assert len((tmp_path / f"m{k}" / "spiral_search" / "results.csv").read_text().splitlines()) == 5
