"""``zmtp.compat``: a pyzmq program run on zmtp unchanged (``import zmq`` is
zmtp), and the pyzmq behaviours Jupyter needed beyond the socket API.

The alias changes what ``import zmq`` means for a whole process, and this
pytest process uses pyzmq as the reference peer: every alias case runs in a
``python -c`` subprocess (with ``PYTHONPATH`` naming the zmtp under test).
Programs run by ``python -m zmtp.compat`` talk to pyzmq sockets of this
process over tcp and ipc, under both backends (``ZMTP_BACKEND``).

Also here, each checked beside pyzmq: ``zmtp.Socket[...]`` /
``zmtp.Context[...]`` subscripting (ipykernel's annotations),
``Poller.sockets``, and a blocking socket in a ``zmtp.asyncio.Poller``
woken for a message that arrives while the poll is being set up
(jupyter_client's ``execute_interactive``).
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import textwrap
import typing

import pytest

import zmtp
import zmtp.asyncio
from helpers import DEADLINE_S

zmq = pytest.importorskip("zmq")

#: where the zmtp under test lives (the worktree, or an installed wheel)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(zmtp.__file__)))


def _env(backend: str = "") -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    if backend:
        env["ZMTP_BACKEND"] = backend
    return env


def run_py(args: typing.List[str], backend: str = "", cwd: typing.Optional[str] = None) -> subprocess.CompletedProcess:
    """``python *args`` with the zmtp under test importable; output as text."""
    return subprocess.run([sys.executable, *args], env=_env(backend), cwd=cwd, capture_output=True, text=True,
                          timeout=DEADLINE_S * 3)


def run_code(code: str, backend: str = "") -> str:
    """Run `code` (dedented) with ``python -c``; its stdout; fails showing stderr."""
    proc = run_py(["-c", textwrap.dedent(code)], backend)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


# -- the alias


def test_install_routes_zmq_and_its_submodules_to_the_same_zmtp_modules():
    out = run_code("""
        import sys
        import zmtp.compat
        zmtp.compat.install()
        zmtp.compat.install()  # again: nothing changes
        assert sum(isinstance(f, zmtp.compat.ZmtpAliasFinder) for f in sys.meta_path) == 1
        import zmq, zmq.asyncio, zmq.sugar.socket, zmq.log.handlers, zmq.utils.jsonapi, zmq.error, zmq.constants
        import zmq.eventloop
        from zmq.eventloop import zmqstream
        from zmq import asyncio as zmq_asyncio
        import zmtp, zmtp.asyncio, zmtp.sugar.socket, zmtp.log.handlers, zmtp.utils.jsonapi, zmtp.eventloop.zmqstream
        assert zmq is zmtp and zmq.asyncio is zmtp.asyncio and zmq_asyncio is zmtp.asyncio
        assert zmq.sugar.socket is zmtp.sugar.socket and zmq.log.handlers is zmtp.log.handlers
        assert zmq.utils.jsonapi is zmtp.utils.jsonapi and zmqstream is zmtp.eventloop.zmqstream
        for name in ("zmq", "zmq.asyncio", "zmq.sugar", "zmq.sugar.socket", "zmq.eventloop"):
            assert sys.modules[name] is sys.modules["zmtp" + name[3:]], name
        # the modules keep their own names and specs
        assert zmq.__name__ == "zmtp" and zmq.__spec__.name == "zmtp" and zmq.asyncio.__spec__.name == "zmtp.asyncio"
        ctx = zmq.Context()
        s = ctx.socket(zmq.PAIR)
        assert isinstance(s, zmq.Socket) and isinstance(s, zmtp.Socket) and isinstance(s, zmq.sugar.socket.Socket)
        try:
            s.recv(zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # zmtp's exception, caught by the zmq name
            assert isinstance(exc, zmtp.Again) and exc.errno == zmq.EAGAIN
        else:
            raise AssertionError("no Again")
        s.close(); ctx.term()
        assert zmtp.compat.installed()
        print("ok")
    """)
    assert out.split() == ["ok"]


def test_a_submodule_zmtp_lacks_fails_naming_zmtp():
    out = run_code("""
        import sys
        import zmtp.compat
        zmtp.compat.install()
        import zmq
        for name in ("zmq.ssh", "zmq.green"):
            try:
                __import__(name)
            except ModuleNotFoundError as exc:
                assert exc.name == name, exc.name
                assert "zmtp" in str(exc) and "zmtp" + name[3:] in str(exc), str(exc)
                print(name, "refused")
            else:
                raise AssertionError(name + " imported")
            # pyzmq's file was not found through zmtp's __path__ instead
            assert name not in sys.modules, name
        assert sys.modules["zmq"] is sys.modules["zmtp"]
    """)
    assert out.splitlines() == ["zmq.ssh refused", "zmq.green refused"]


def test_install_refuses_when_pyzmq_is_already_imported():
    out = run_code("""
        import sys
        import zmq
        import zmtp.compat
        try:
            zmtp.compat.install()
        except zmtp.compat.CompatError as exc:
            assert "already imported" in str(exc) and "python -m zmtp.compat" in str(exc), str(exc)
            assert isinstance(exc, RuntimeError)
            print("refused")
        assert not zmtp.compat.installed()
        assert sys.modules["zmq"] is zmq and zmq.__name__ == "zmq" and hasattr(zmq, "backend")
    """)
    assert out.split() == ["refused"]


def test_uninstall_gives_zmq_back_to_pyzmq():
    out = run_code("""
        import sys
        import zmtp.compat
        zmtp.compat.install()
        import zmq, zmq.asyncio
        assert zmq.__name__ == "zmtp"
        zmtp.compat.uninstall()
        assert not zmtp.compat.installed() and "zmq" not in sys.modules and "zmq.asyncio" not in sys.modules
        import zmq
        assert zmq.__name__ == "zmq" and zmq.pyzmq_version().startswith("2")
        assert sys.modules["zmtp"].__name__ == "zmtp"
        print("ok")
    """)
    assert out.split() == ["ok"]


# -- the runner: python -m zmtp.compat

CLIENT = """
import sys
import zmq
ctx = zmq.Context()
s = ctx.socket(zmq.REQ)
s.rcvtimeo = s.sndtimeo = 20000
s.connect(sys.argv[1])
s.send(b"ping from " + zmq.__name__.encode())
print(s.recv().decode(), zmq.__name__, zmq.backend_name(), __name__, sys.argv[1:])
s.close(); ctx.term()
"""


def _serve_once(rep, reply: bytes) -> bytes:
    assert rep.poll(DEADLINE_S * 3 * 1000), "the program never sent"
    got = rep.recv()
    rep.send(reply)
    return got


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("how", ["script", "module", "code"])
def test_runner_runs_a_pyzmq_program_against_a_pyzmq_peer(backend, zctx, tmp_path, transport, how):
    rep = zctx.socket(zmq.REP)
    if transport == "tcp":
        ep = f"tcp://127.0.0.1:{rep.bind_to_random_port('tcp://127.0.0.1')}"
    else:
        ep = f"ipc://{tmp_path}/rep.ipc"
        rep.bind(ep)
    (tmp_path / "client_prog.py").write_text(CLIENT)
    argv = {"script": [str(tmp_path / "client_prog.py"), ep],
            "module": ["-m", "client_prog", ep],
            "code": ["-c", CLIENT, ep]}[how]
    proc = subprocess.Popen([sys.executable, "-m", "zmtp.compat", *argv], env=_env(backend), cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        got = _serve_once(rep, b"pong")
        out, err = proc.communicate(timeout=DEADLINE_S * 3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert got == b"ping from zmtp"
    assert out.split() == ["pong", "zmtp", backend, "__main__", f"['{ep}']"], (out, err)


def test_runner_sets_argv_and_path_as_python_does(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "helper_mod.py").write_text("VALUE = 7\n")
    (tmp_path / "sub" / "prog.py").write_text(textwrap.dedent("""
        import os, sys
        import helper_mod  # found next to the script, as python script.py finds it
        import zmq
        print(sys.argv, helper_mod.VALUE, zmq.__name__, os.path.basename(sys.path[0]))
        sys.exit(3)
    """))
    proc = run_py(["-m", "zmtp.compat", "sub/prog.py", "a", "--b"], cwd=str(tmp_path))
    assert proc.returncode == 3, proc.stderr  # the program's exit status
    assert proc.stdout.split("\n")[0] == "['sub/prog.py', 'a', '--b'] 7 zmtp sub", proc.stdout
    proc = run_py(["-m", "zmtp.compat", "-m", "helper_mod"], cwd=str(tmp_path / "sub"))
    assert proc.returncode == 0, proc.stderr


def test_runner_usage_and_errors(tmp_path):
    proc = run_py(["-m", "zmtp.compat"])
    assert proc.returncode == 2 and "usage: python -m zmtp.compat" in proc.stderr
    proc = run_py(["-m", "zmtp.compat", "-m"])
    assert proc.returncode == 2 and "-m needs an argument" in proc.stderr
    proc = run_py(["-m", "zmtp.compat", "--help"])
    assert proc.returncode == 0 and "usage" in proc.stdout
    proc = run_py(["-m", "zmtp.compat", "-c", "import zmq.ssh"])
    assert proc.returncode == 1 and "zmtp has no module 'zmtp.ssh'" in proc.stderr, proc.stderr
    proc = run_py(["-m", "zmtp.compat", "-c", "raise SystemExit(5)"])
    assert proc.returncode == 5


# -- pyzmq behaviours Jupyter needed


def test_socket_and_context_are_subscriptable_as_pyzmqs():
    """ipykernel evaluates ``zmq.Context[t.Any]`` and ``zmq.Socket[t.Any]`` at import."""
    for cls, ref in ((zmtp.Socket, zmq.Socket), (zmtp.Context, zmq.Context)):
        alias = cls[typing.Any]
        assert typing.get_origin(alias) is cls and typing.get_args(alias) == (typing.Any,)
        assert typing.get_origin(ref[typing.Any]) is ref
    # (pyzmq's asyncio classes refuse it, being bound to Future; zmtp's inherit it)
    assert typing.get_origin(zmtp.asyncio.Socket[typing.Any]) is zmtp.asyncio.Socket
    for cls, ref in ((zmtp.Poller, zmq.Poller), (zmtp.Frame, zmq.Frame)):
        with pytest.raises(TypeError):
            ref[typing.Any]
        with pytest.raises(TypeError):
            cls[typing.Any]


def test_poller_sockets_as_pyzmqs(ctx, zctx):
    for m, c in ((zmtp, ctx), (zmq, zctx)):
        a, b = c.socket(m.PAIR), c.socket(m.PAIR)
        p = m.Poller()
        p.register(a, m.POLLIN)
        p.register(b)
        p.register(a, m.POLLOUT)  # modifies in place, keeps the order
        assert [(s is a, int(f)) for s, f in p.sockets] == [(True, 2), (False, 3)]
        p.unregister(a)
        assert [s for s, _ in p.sockets] == [b]


class _EdgeStealingSocket(zmtp.Socket):
    """A blocking socket whose next fileno() call, once armed, first has the
    peer send, waits until the message made the fd readable and consumes
    that edge with calls on the socket (as libzmq's ZMQ_FD contract allows
    any call to): the worst moment for a message to arrive while an async
    poll is being set up."""

    _arm: typing.Any = None

    def fileno(self) -> int:
        arm, self._arm = self._arm, None
        if arm is not None:
            arm()
        return super().fileno()


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest.mark.parametrize("zmtp_binds", [True, False], ids=["zmtp_binds", "pyzmq_binds"])
def test_blocking_socket_in_async_poller_sees_a_message_arriving_during_setup(backend, ctx, zctx, tmp_path,
                                                                              transport, zmtp_binds):
    """jupyter_client's execute_interactive polls its blocking iopub socket
    with ``zmq.asyncio.Poller``; a message arriving between the poll's first
    look and its wait must wake it (it hung 1 run in 5 when fileno() was
    asked for after that look)."""
    sub = ctx.socket(zmtp.SUB, socket_class=_EdgeStealingSocket)
    sub.setsockopt(zmtp.SUBSCRIBE, b"")
    pub = zctx.socket(zmq.PUB)
    ep = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/pub.ipc"
    if zmtp_binds:
        sub.bind(ep)
        pub.connect(sub.last_endpoint)
    else:
        pub.bind(ep)
        sub.connect(pub.last_endpoint.decode())
    fd = sub.fileno()
    # subscribed: a first message gets through
    deadline = DEADLINE_S * 1000
    while not sub.poll(50):
        pub.send(b"hello")
        deadline -= 50
        assert deadline > 0, "no subscription"
    while sub.poll(0):
        sub.recv()

    def arrive() -> None:
        pub.send(b"late")
        assert select.select([fd], [], [], DEADLINE_S)[0], "the message never made the fd readable"
        # The progress thread read it and signalled the fd.  A call that
        # steps the socket now (this EVENTS read; in the wild, the progress
        # thread's next step between two calls) brings the socket's view up
        # to date, and the call's end consumes the edge: from here only a
        # look at EVENTS after the last call finds the message.
        assert sub.getsockopt(zmtp.EVENTS) & zmtp.POLLIN

    async def main() -> typing.Any:
        poller = zmtp.asyncio.Poller()
        poller.register(sub, zmtp.POLLIN)
        sub._arm = arrive
        return await poller.poll(DEADLINE_S * 1000)

    events = asyncio.run(main())
    assert events == [(sub, zmtp.POLLIN)], "the poll missed a message queued during its set-up"
    assert sub.recv() == b"late"
