"""A real Spark standalone cluster on 127.0.0.1 (a master and N workers started with
``spark-class`` from the pyspark install), the lakehouse wheel, and an executor Python that
has the project's dependencies but not lakehouse itself: a node before the wheel is shipped.

Used by ``test_spark_cluster.py`` and ``tests/benchmarks/bench_export.py``. Every process
started here runs in its own session and is stopped (its whole process group: executors and
their Python workers too) when the cluster's ``with`` block ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build_wheel(out: Path) -> Path:
    """The lakehouse wheel, built from a copy of the sources (no build/ folder in the checkout)."""
    source = out / "source"
    for name in ("pyproject.toml", "setup.py", "README.md"):
        source.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    for folder in ("lakehouse", "schemas"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        check=True, capture_output=True, timeout=600,
    )
    return next(out.glob("lakehouse-*.whl"))


def bare_python(folder: Path) -> Path:
    """An interpreter with this venv's packages on its path but without lakehouse (``-S`` skips
    the .pth files, among them the editable install's)."""
    script = folder / "bare-python"
    site = sysconfig.get_paths()["purelib"]
    script.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec {sys.executable} -S "$@"\n'
    )
    script.chmod(0o755)
    return script


@dataclass
class Cluster:
    master_url: str
    ui_url: str
    workers: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=2) as reply:
                state = json.load(reply)
        except OSError:
            return 0
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            try:  # what its executors left in its group
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def standalone_cluster(folder: Path, *, workers: int, cores: int = 1, python: Path | None = None,
                       memory: str = "1g") -> Iterator[Cluster]:
    """A master and ``workers`` workers of ``cores`` cores each, on 127.0.0.1; stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(folder / "logs"),
        "PYSPARK_PYTHON": str(python or sys.executable),
    }
    port, ui = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}", workers)

    def start(name: str, *args: str) -> None:
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115  (the process writes it until stopped)
        cluster.processes.append(subprocess.Popen(
            [str(BIN / "spark-class"), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=folder,
        ))

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(ui))
        for i in range(workers):
            start(f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                  "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port()),
                  "--work-dir", str(folder / f"work-{i}"), cluster.master_url)
        deadline = time.monotonic() + 120
        while cluster.alive_workers() < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in cluster.processes):
                raise RuntimeError(f"the Spark cluster did not start; see the logs in {folder}")
            time.sleep(0.5)
        yield cluster
    finally:
        cluster.stop()


def spark_submit(cluster: Cluster, job_args: list[str], *, py_files: list[Path], python: Path,
                 conf: dict[str, str] | None = None, env: dict[str, str] | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``spark-submit --master <cluster> [--py-files …] jobs/export_spark.py …`` as a real process."""
    settings = {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1", **(conf or {})}
    command = [str(BIN / "spark-submit"), "--master", cluster.master_url]
    if py_files:
        command += ["--py-files", ",".join(str(p) for p in py_files)]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    command += [str(REPO / "jobs" / "export_spark.py"), *job_args]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=timeout,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": str(python),
             "PYSPARK_DRIVER_PYTHON": sys.executable, **(env or {})},
    )
