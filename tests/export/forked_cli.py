"""The lakehouse CLI in many short-lived processes, for the race, kill and chaos tests.

A fresh interpreter spends seconds importing lakehouse and Great Expectations before an
export does anything; tests that start dozens of processes and kill them at random would
mostly kill imports. ``CliServer`` starts one server process that imports them once and
then forks a child per command: each child is a real process running ``lakehouse.cli.main``
with its own arguments and environment, writing its output to a file; it can be paused
with SIGSTOP or killed with SIGKILL like any other. The server reaps each child and writes
its exit status (negative: the signal that ended it) next to the output.

Run as a script, this module is the server: one JSON request per line on stdin
(``{"args": [...], "env": {...}, "out": path}``), the child's PID per line on stdout.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CliChild:
    pid: int
    out: Path

    @property
    def exit_file(self) -> Path:
        return self.out.with_name(self.out.name + ".exit")

    @property
    def done(self) -> bool:
        return self.exit_file.exists()

    def wait(self, timeout: float = 300) -> int:
        """The exit status (negative: killed by that signal)."""
        deadline = time.monotonic() + timeout
        while not self.done:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"lakehouse child {self.pid} still running after {timeout} s")
            time.sleep(0.02)
        return int(self.exit_file.read_text())

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        if not self.done:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    @property
    def output(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def json(self) -> dict[str, Any]:
        """The JSON object the command printed (on stdout; stderr holds one line on failure)."""
        text = self.output
        return json.loads(text[text.index("{") : text.rindex("}") + 1])


class CliServer:
    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_FAULT")}
        self._process = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self._process.stdout is not None and self._process.stdout.readline().strip() == "ready"
        self._count = 0

    def start(self, args: list[str], out_dir: Path, env: dict[str, str] | None = None) -> CliChild:
        """Start ``lakehouse <args>`` in a forked child; its output goes to a file in ``out_dir``."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._count += 1
        out = out_dir / f"cli-{self._count:04d}.out"
        self._process.stdin.write(json.dumps({"args": args, "env": env or {}, "out": str(out)}) + "\n")
        self._process.stdin.flush()
        return CliChild(int(self._process.stdout.readline()), out)

    def run(self, args: list[str], out_dir: Path, env: dict[str, str] | None = None) -> tuple[int, CliChild]:
        child = self.start(args, out_dir, env)
        return child.wait(), child

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)


def _serve() -> None:
    from lakehouse import quality
    from lakehouse.cli import main  # noqa: F401 - imported once, here, for every child

    quality.preload().join()  # Great Expectations imported before any child is forked
    print("ready", flush=True)
    children: dict[int, str] = {}
    stdin = sys.stdin.fileno()
    pending = b""
    while True:
        _reap(children, block=False)
        ready, _, _ = select.select([stdin], [], [], 0.02)
        if not ready:
            continue
        chunk = os.read(stdin, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request)
            children[pid] = request["out"]
            print(pid, flush=True)
    for pid in list(children):
        os.kill(pid, signal.SIGKILL)
    _reap(children, block=True)


def _reap(children: dict[int, str], *, block: bool) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        out = children.pop(pid, None)
        if out is not None:
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            temp = Path(f"{out}.exit.part")
            temp.write_text(str(code))
            temp.rename(f"{out}.exit")


def _child(request: dict[str, Any]) -> None:
    code = 1
    try:
        for name in [k for k in os.environ if k.startswith("LAKEHOUSE_FAULT")]:
            del os.environ[name]
        os.environ.update(request["env"])
        fd = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - the child's whole life
        sys.argv = ["lakehouse", *request["args"]]
        from lakehouse.cli import main

        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - reported in the output, as an uncaught error would be
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve()
