"""The embedded instances' one-shot Python commands, forked from an interpreter that has already
imported torch and the AWS CLI.

A validated embedded instance runs the agent (which imports torch) and the AWS CLI three times, each a
new interpreter on this machine's few cores: importing torch is about 1.2 CPU-seconds and the AWS CLI
about 0.35, most of what an embedded instance costs the test run (which validates about ninety). Here a
process imports them once (`PreforkServer`) and forks a child for each command an instance runs
through its `python3` or `aws` (`write_shims`): the child takes the command's argv, working directory,
environment and standard streams, runs the same script, module or `-c` code the interpreter would,
and its exit status is the command's. What runs is the same code; only the imports are already done.

Services are not forked: the embedded systemd (eiplane.local.systemd) starts a unit without the socket
this needs, so its shim execs a real interpreter and the model server is a process of its own, with its
own signals, process group and restarts, as the serving tests need. A command the child cannot run as
the interpreter would (an option other than -c, or an environment that differs in what the preloaded
imports read) execs a real interpreter too. A shim killed (the agent's timeout kills the command's process
group) takes its command with it: the connection closes and the server kills the command's process
group (the command and whatever it started), as the timeout would have.

Wire: the shim sends a 4-byte length, then JSON {argv, cwd, env}, with its fds 0, 1 and 2 attached
(SCM_RIGHTS); then one byte per signal it receives (SIGTERM, SIGINT, SIGHUP), passed on to the child.
The server answers with the child's exit status as 4 bytes (128 + N for a child killed by signal N, as
sh reports it).
"""

from __future__ import annotations

import array
import atexit
import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

SOCKET_ENV = "EIPLANE_PREFORK_SOCKET"
# Imported before the first fork: what the agent and the AWS CLI would each import again.
PRELOAD = ("torch", "awscli.clidriver")
# What those imports read from the environment when they run (libgomp's threads; the AWS CLI's data path):
# a command whose environment differs in one of them gets a new interpreter, which reads its own.
READ_AT_IMPORT = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "AWS_DATA_PATH")
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# The shim: `python3` (or `aws`, with the CLI's script first) on an embedded instance's PATH. `-I -S`: it
# starts in ~15 ms and imports nothing of the venv. Without the socket (a service of the embedded systemd,
# or no server running), it is the real interpreter.
SHIM = r'''#!{python} -IS
import array, json, os, signal, socket, struct, sys
argv = [{python!r}, *{prefix!r}, *sys.argv[1:]]
path = os.environ.get({env!r})
if not path:
    os.execv(argv[0], argv)
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    conn.connect(path)
except OSError:
    os.execv(argv[0], argv)
header = json.dumps({{"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
conn.sendmsg([struct.pack(">I", len(header)) + header],
             [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
for number in {signals!r}:
    signal.signal(number, lambda signum, _frame: conn.send(bytes([signum])))
status = b""
while len(status) < 4:
    chunk = conn.recv(4 - len(status))
    if not chunk:
        sys.stderr.write("eiplane prefork: the command's process was lost\n")
        sys.exit(1)
    status += chunk
sys.exit(struct.unpack(">i", status)[0])
'''


def write_shims(folder: Path) -> None:
    """`python3` and `aws` in `folder`, an embedded instance's own bin (first on its PATH): this interpreter, and
    the AWS CLI installed beside it (the one the server preloads)."""
    for name, prefix in (("python3", []), ("aws", [str(Path(sys.executable).parent / "aws")])):
        shim = folder / name
        shim.write_text(SHIM.format(python=sys.executable, prefix=prefix, env=SOCKET_ENV,
                                    signals=[int(s) for s in FORWARDED_SIGNALS]))
        shim.chmod(0o755)


# --- the server process ----------------------------------------------------------------------------

def _receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    data, fds = b"", array.array("i")
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk, ancillary, _flags, _address = conn.recvmsg(1 << 16, socket.CMSG_SPACE(3 * fds.itemsize))
        if not chunk:
            raise EOFError("the shim went away before its command was read")
        data += chunk
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return json.loads(data[4:]), list(fds)


def _stdio(unbuffered: bool) -> None:
    """New standard streams on fds 0-2, buffered as a new interpreter would buffer them."""
    import io

    def writer(fd: int, line_buffering: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w", closefd=False)
        stream = raw if unbuffered else io.BufferedWriter(raw)
        return io.TextIOWrapper(stream, encoding="utf-8", errors="strict" if fd == 1 else "backslashreplace",  # type: ignore[arg-type]
                                line_buffering=line_buffering, write_through=unbuffered)

    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    sys.stdout = writer(1, os.isatty(1))
    sys.stderr = writer(2, True)  # stderr is always line-buffered (Python 3.9+)
    for name in ("stdin", "stdout", "stderr"):  # what a new interpreter started with
        setattr(sys, f"__{name}__", getattr(sys, name))


# Set by serve(): the environment the preloaded modules were imported in, and what their imports added to it
# (the AWS CLI sets AWS_DATA_PATH), which a new interpreter's imports would add to the command's.
_IMPORTED_IN: dict[str, str] = {}
_IMPORTS_SET: dict[str, str] = {}


def _run_as_interpreter(request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: become `python ARGS` in the command's directory and environment. Never returns."""
    import random
    import runpy
    import traceback
    import types

    argv = [str(a) for a in request["argv"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in request["env"].items()}  # type: ignore[attr-defined]
    code = 1
    try:
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(str(request["cwd"]))
        args = argv[1:]
        if (not args or (args[0].startswith("-") and args[0] != "-c")
                or any(env.get(name) != _IMPORTED_IN.get(name) for name in READ_AT_IMPORT)):
            os.execve(argv[0], argv, env)  # noqa: S606 (what this child does not emulate: the real interpreter)
        os.environ.clear()
        os.environ.update({**_IMPORTS_SET, **env})
        random.seed()  # a new interpreter's own seed, not the server's
        _stdio(bool(env.get("PYTHONUNBUFFERED")))
        extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            sys.path[0:1] = ["", *extra]
            main = types.ModuleType("__main__")  # a new interpreter's: nothing of the server's own -c
            sys.modules["__main__"] = main
            exec(compile(args[1], "<string>", "exec"), vars(main))  # noqa: S102 (the command's own -c code)
        else:
            script = os.path.abspath(args[0])
            sys.argv = args
            sys.path[0:1] = [os.path.dirname(script), *extra]
            runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
        code = 1
    finally:
        # As the interpreter ends: its threads waited for, the atexit functions run, the streams flushed.
        for last in (threading._shutdown, atexit._run_exitfuncs, sys.stdout.flush, sys.stderr.flush):  # type: ignore[attr-defined]
            with contextlib.suppress(BaseException):
                last()
        os._exit(code & 0xFF)


def _serve_one(conn: socket.socket) -> None:
    """In the per-command child: fork the command, pass signals on, answer its exit status. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        request, fds = _receive(conn)
        pid = os.fork()
        if pid == 0:
            conn.close()
            # A group of its own, as the command's interpreter and its children were in the command's: killed
            # together when the shim goes (the server's own session must not be what they signal).
            os.setpgid(0, 0)
            _run_as_interpreter(request, fds)
        with contextlib.suppress(OSError):  # (both sides set it: a kill may come before the child has)
            os.setpgid(pid, pid)
        for fd in fds:
            os.close(fd)
        exited = os.pidfd_open(pid)
        while True:
            ready, _, _ = select.select([conn.fileno(), exited], [], [])
            if exited in ready:
                status = os.waitpid(pid, 0)[1]
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code
                with contextlib.suppress(OSError):
                    conn.sendall(struct.pack(">i", code))
                break
            received = conn.recv(16)
            if not received:  # the shim is gone (killed with the command's process group): so is its command
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            for number in received:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, number)
    finally:
        os._exit(0)


def serve(path: str, parent: int) -> None:
    """The server's loop: import PRELOAD, listen on `path`, fork a child per connection."""
    import importlib

    before = dict(os.environ)
    _IMPORTED_IN.update({name: before[name] for name in READ_AT_IMPORT if name in before})
    for module in PRELOAD:
        importlib.import_module(module)
    _IMPORTS_SET.update({name: value for name, value in os.environ.items() if before.get(name) != value})
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    print("ready", flush=True)
    while os.getppid() == parent:  # ends with the process that started it
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        if os.fork() == 0:
            listener.close()
            _serve_one(conn)
        conn.close()


# --- the engine's side ------------------------------------------------------------------------------

class PreforkServer:
    """One per process (`shared()`): started on first use, stopped at exit."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="eiplane-prefork-")
        self.socket_path = str(Path(self._folder.name) / "prefork.sock")
        # One OpenMP thread, as the embedded instances' commands have (eiplane.local.instances): libgomp reads
        # OMP_NUM_THREADS once, when torch loads it here, before any fork.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from eiplane.local.prefork import serve; serve(sys.argv[1], int(sys.argv[2]))",
             self.socket_path, str(os.getpid())], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env,
            start_new_session=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError(f"the prefork server did not start (exit {self._process.poll()})")
        atexit.register(self.close)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()
        self._folder.cleanup()


_SHARED: PreforkServer | None = None
_SHARED_LOCK = threading.Lock()


def shared() -> PreforkServer:
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or _SHARED._process.poll() is not None:
            _SHARED = PreforkServer()
        return _SHARED
