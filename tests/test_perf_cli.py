"""Smoke test of ``python -m zmtp.perf``: the table (JSON and text), the
libzmq-style ``lat`` / ``thr`` pairs, and option errors.  Tiny counts: this
checks that everything runs and reports, not how fast (a few seconds)."""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import pytest

from zmtp import _zmtp

ALL_IMPLS = ["zmtp-io_uring", "zmtp-epoll", "pyzmq", "raw"]
RUN_TIMEOUT_S = 45  # under conftest.HANG_S: a hang fails this test, not the whole run


def perf(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run ``python -m zmtp.perf ARGS`` from the temp dir (the installed package, not ./zmtp)."""
    return subprocess.run([sys.executable, "-m", "zmtp.perf", *args], cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=timeout)


def start(*args: str) -> subprocess.Popen:
    """``python -m zmtp.perf ARGS`` in the background."""
    return subprocess.Popen([sys.executable, "-m", "zmtp.perf", *args], cwd=tempfile.gettempdir(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def pair(tool: str, endpoint: str, size: str, count: str,
         impl: str) -> Iterator[Tuple[subprocess.Popen, subprocess.Popen]]:
    """``tool bind`` and ``tool connect`` on `endpoint`, the connect side
    started once the bind side says it is bound (a connect racing the bind
    retried for seconds on a loaded machine and the bind side's receive
    timed out); both killed and reaped at the end."""
    common = [endpoint, size, count, "--impl", impl, "--timeout", "20"]
    procs = [start(tool, "bind", *common)]
    deadline = time.monotonic() + RUN_TIMEOUT_S / 3
    while time.monotonic() < deadline and procs[0].poll() is None:
        if select.select([procs[0].stderr], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break  # "bound to ..." (or an error, which finish() reports)
    procs.append(start(tool, "connect", *common))
    try:
        yield procs[0], procs[1]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def finish(proc: subprocess.Popen, timeout: float = 30) -> str:
    """The stdout of a background run, which must exit 0."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} timed out:\n{out}\n{err}")
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{out}\n{err}"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pyzmq_missing() -> bool:
    try:
        import zmq  # noqa: F401
    except ImportError:
        return True
    return False


def tool_impls() -> List[str]:
    """The --impl values the lat/thr pairs run with here."""
    impls = ["zmtp-epoll", "raw"]
    if _zmtp._probe_backend("io_uring")[0]:
        impls.insert(0, "zmtp-io_uring")
    if not pyzmq_missing():
        impls.append("pyzmq")
    return impls


def test_table_json_has_every_implementation():
    r = perf("--count", "2000", "--runs", "1", "--scenario", "reqrep,pushpull", "--json", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert sorted(doc["impls"] + list(doc["skipped"])) == sorted(ALL_IMPLS)
    assert set(doc["skipped"]) <= {"zmtp-io_uring", "pyzmq"}  # zmtp-epoll and raw always run
    assert [(row["case"], row["metric"]) for row in doc["rows"]] == [
        ("reqrep", "p50_us"), ("reqrep", "p99_us"), ("pushpull", "msg_s")]
    for row in doc["rows"]:
        assert row["errors"] == {}, row
        assert set(row["values"]) == set(doc["impls"])
        for impl, value in row["values"].items():
            assert value is not None and value > 0, (row["case"], impl, value)
        assert all(v is None or v > 0 for v in row["ratios"].values()), row["ratios"]
    p50, p99 = doc["rows"][0]["values"], doc["rows"][1]["values"]
    assert all(p50[i] <= p99[i] for i in doc["impls"])


def test_table_text():
    r = perf("--count", "2000", "--runs", "1", "--scenario", "dealer_router,pubsub", "--subscribers", "2",
             "--quiet", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("zmtp ") and "median of 1 interleaved run(s)" in lines[0]
    header = lines[1].split()
    assert header[:3] == ["case", "size", "metric"]
    assert "zmtp-epoll" in header and "raw" in header and "zmtp/raw" in header
    rows = {ln.split("  ")[0].strip(): ln for ln in lines[3:5]}
    assert set(rows) == {"dealer_router", "pubsub 2 sub"}, lines
    assert "1 KiB" in rows["dealer_router"] and "msg/s per sub" in rows["pubsub 2 sub"]
    assert "timeout" not in r.stdout and "error" not in r.stdout
    assert any(ln.startswith("ratios: > 1 means") for ln in lines)
    assert r.stderr == ""  # --quiet: no progress line


@pytest.mark.parametrize("impl", tool_impls())
def test_lat_pair(impl):
    with pair("lat", f"tcp://127.0.0.1:{free_port()}", "32", "200", impl) as (server, client):
        out = finish(client)
        assert finish(server) == ""
    assert out.splitlines()[:2] == ["message size: 32 [B]", "roundtrip count: 200"]
    latency = re.search(r"^average latency: ([0-9.]+) \[us\]$", out, re.M)
    assert latency and float(latency.group(1)) > 0, out


@pytest.mark.parametrize("impl", tool_impls())
def test_thr_pair(impl, tmp_path):
    with pair("thr", f"ipc://{tmp_path}/thr", "100", "5000", impl) as (server, client):
        assert finish(client) == ""
        lines = finish(server).splitlines()
    assert lines[:2] == ["message size: 100 [B]", "message count: 5000"]
    assert re.fullmatch(r"mean throughput: [1-9][0-9]* \[msg/s\]", lines[2]), lines
    assert re.fullmatch(r"mean throughput: [0-9]+\.[0-9]{3} \[Mb/s\]", lines[3]), lines


INPROC = "inproc_reqrep,inproc_pushpull"
#: the table without --scenario: every scenario, the inproc ones, then the async ones last
DEFAULT_CASES = ["reqrep", "pushpull", "pushpull_batch", "dealer_router", "pubsub 1 sub", "pubsub 4 sub",
                 "inproc_reqrep", "inproc_pushpull", "async_reqrep", "async_pushpull", "async_dealer_router"]
DEFAULT_HELP = ("(default: all but curve_reqrep, curve_pushpull, curve_handshake, proxy, many_peers, connect_rate, "
                "big_message_memory)")
INPROC_ROWS = [("inproc_reqrep", "p50_us"), ("inproc_reqrep", "p99_us"), ("inproc_pushpull", "msg_s")]


def zmtp_backends() -> List[str]:
    """The zmtp columns that can run here."""
    return ["zmtp-io_uring", "zmtp-epoll"] if _zmtp._probe_backend("io_uring")[0] else ["zmtp-epoll"]


def inproc_doc(impls: str) -> dict:
    """``--json`` of both inproc scenarios for `impls`, tiny counts; every run must succeed."""
    r = perf("--count", "2000", "--runs", "1", "--scenario", INPROC, "--impl", impls, "--json", "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert [(row["case"], row["metric"]) for row in doc["rows"]] == INPROC_ROWS
    for row in doc["rows"]:
        assert row["transport"] == "inproc" and row["count"] == 2000 and row["size"] == 64, row
        assert row["errors"] == {}, row
        assert set(row["values"]) == set(doc["impls"])
        for impl, value in row["values"].items():
            assert value is not None and value > 0, (row["case"], impl, value)
            assert len(row["runs"][impl]) == 1
    p50, p99 = doc["rows"][0]["values"], doc["rows"][1]["values"]
    assert all(p50[i] <= p99[i] for i in doc["impls"])
    return doc


def test_inproc_scenarios_pyzmq_and_raw():
    doc = inproc_doc("pyzmq,raw")
    assert doc["impls"] == (["raw"] if pyzmq_missing() else ["pyzmq", "raw"])


@pytest.mark.parametrize("impl", zmtp_backends())
def test_inproc_scenarios_zmtp(impl):
    """zmtp's own inproc cells (needs zmtp's inproc:// transport)."""
    doc = inproc_doc(impl)
    assert doc["impls"] == [impl] and doc["skipped"] == {}


def test_inproc_scenarios_every_column_and_ratios():
    """All columns side by side; the ratio columns are filled for the inproc rows too."""
    r = perf("--count", "2000", "--runs", "1", "--scenario", INPROC, "--json", "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert [(row["case"], row["metric"]) for row in doc["rows"]] == INPROC_ROWS
    for row in doc["rows"]:
        assert row["errors"] == {}, row
        assert all(v is not None and v > 0 for v in row["ratios"].values()), row["ratios"]
        assert "zmtp/raw" in row["ratios"]


#: run_once of one inproc case in this process: the syscalls its two threads (and the Context) made
BACKEND_PROBE = """
import json, sys
from zmtp import _zmtp, perf
impl = perf.impl_by_name(sys.argv[1])
case = perf.Case(sys.argv[2], 64, 3000)
before = _zmtp.io_stats()
value = perf.run_once(impl, case, "inproc://backend-probe", 10.0)
after = _zmtp.io_stats()
print(json.dumps({"value": value, **{k: after[k] - before[k] for k in ("io_uring_enter", "epoll_ctl", "epoll_wait")}}))
"""


@pytest.mark.parametrize("scenario", ["inproc_reqrep", "inproc_pushpull"])
@pytest.mark.parametrize("impl", zmtp_backends())
def test_inproc_threads_use_the_column_backend(impl, scenario):
    """Neither thread of a run touches the other column's backend: no
    io_uring_enter in a zmtp-epoll run (though the process default is
    io_uring where the kernel allows it), no epoll_ctl in a zmtp-io_uring run.
    In reqrep each thread waits for every message; on epoll its busy-poll
    makes a zero-timeout epoll_wait per look (thousands; the progress
    thread, which waits on epoll whatever the column, makes a handful).
    io_uring's busy-poll reads the rings in memory and an inproc wake-up
    caught by it makes no syscall at all, so an io_uring run may show none."""
    r = subprocess.run([sys.executable, "-c", BACKEND_PROBE, impl, scenario], cwd=tempfile.gettempdir(),
                       capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert all(v > 0 for v in out["value"].values()), out
    other = "io_uring_enter" if impl == "zmtp-epoll" else "epoll_ctl"
    assert out[other] == 0, out
    if scenario == "inproc_reqrep" and impl == "zmtp-epoll":
        assert out["epoll_wait"] > 100, out


def test_inproc_text_table():
    r = perf("--count", "2000", "--runs", "1", "--scenario", INPROC, "--impl", "raw", "--quiet", "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "; inproc (two threads of this process); " in lines[0]
    assert [ln.split()[0] for ln in lines[3:6]] == ["inproc_reqrep", "inproc_reqrep", "inproc_pushpull"]
    assert any(ln.startswith("raw in inproc_* rows: no socket; two threads pass the bytes through "
                             "queue.SimpleQueue") for ln in lines), lines
    assert "timeout" not in r.stdout and "error" not in r.stdout


def test_inproc_rows_next_to_tcp_rows():
    """A mixed table: tcp rows as before, the inproc row after them, both named in the header."""
    r = perf("--count", "2000", "--runs", "1", "--scenario", "inproc_pushpull,pushpull", "--impl", "raw",
             "--json", "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert [(row["case"], row["transport"]) for row in rows] == [("pushpull", "tcp"), ("inproc_pushpull", "inproc")]
    r = perf("--count", "2000", "--runs", "1", "--scenario", "inproc_pushpull,pushpull", "--impl", "raw",
             "--quiet", "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "; tcp 127.0.0.1 (inproc_* rows: inproc, two threads of this process); " in r.stdout.splitlines()[0]


def test_default_scenarios_and_help():
    from zmtp import perf as perf_module

    parser = perf_module.table_parser()
    plan = perf_module.make_plan(parser.parse_args([]), parser)
    assert [c.label for c in plan.cases] == DEFAULT_CASES
    r = perf("--help", timeout=20)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "inproc_reqrep, inproc_pushpull" in text and "queue.SimpleQueue" in text
    assert "async_reqrep, async_pushpull, async_dealer_router" in text and "--loop {asyncio,uvloop}" in text
    assert DEFAULT_HELP in text


@pytest.mark.parametrize("args, message", [
    (["--scenario", "nope"], "argument --scenario: unknown nope"),
    (["--impl", "zmtp-kqueue"], "argument --impl: unknown zmtp-kqueue"),
    (["--count", "1"], "argument --count: the count must be at least 2"),
    (["--loop", "trio"], "argument --loop: invalid choice: 'trio' (choose from 'asyncio', 'uvloop')"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["lat", "bind", "tcp://127.0.0.1:1"], "the following arguments are required: size, count"),
    (["thr", "listen", "ipc:///x", "1", "2"], "argument role: invalid choice: 'listen'"),
])
def test_bad_option_is_a_clear_error(args, message):
    r = perf(*args, timeout=20)
    assert r.returncode == 2
    assert "error: " + message in r.stderr, r.stderr
    assert r.stdout == ""


def test_tool_failure_is_one_line():
    r = perf("lat", "connect", f"tcp://127.0.0.1:{free_port()}", "8", "10", "--timeout", "0.3", timeout=20)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "python -m zmtp.perf lat connect: timeout: Again: Resource temporarily unavailable"]


# ---------------------------------------------------------------- the async_* rows (zmtp.asyncio vs zmq.asyncio)

ASYNC = "async_reqrep,async_pushpull,async_dealer_router"
#: the rows of --scenario ASYNC: each async scenario brings its blocking twin (the async/blocking ratio)
ASYNC_ROWS = [("reqrep", "p50_us"), ("reqrep", "p99_us"), ("pushpull", "msg_s"), ("dealer_router", "msg_s"),
              ("async_reqrep", "p50_us"), ("async_pushpull", "msg_s"), ("async_dealer_router", "msg_s")]
needs_pyzmq = pytest.mark.skipif(pyzmq_missing(), reason="pyzmq is the async rows' other column")


def uvloop_missing() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return True
    return False


@needs_pyzmq
def test_async_rows_json():
    """Every async row has its zmtp.asyncio and zmq.asyncio figures (one run each, tiny counts), the ratio
    to pyzmq and to zmtp's blocking row; epoll and raw do not run them."""
    r = perf("--count", "300", "--runs", "1", "--scenario", ASYNC, "--impl", "zmtp-epoll,pyzmq,raw", "--json",
             "--timeout", "15")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["loop"] == "asyncio" and doc["impls"] == ["zmtp-epoll", "pyzmq", "raw"]
    assert [(row["case"], row["metric"]) for row in doc["rows"]] == ASYNC_ROWS
    for row in doc["rows"]:
        assert row["errors"] == {}, row
        if not row["case"].startswith("async_"):
            assert "async/blocking" not in row["ratios"] and "api" not in row, row
            continue
        assert (row["api"], row["loop"], row["transport"]) == ("asyncio", "asyncio", "tcp"), row
        assert row["blocking_twin"] == row["case"][len("async_"):], row
        for impl in ("zmtp-epoll", "pyzmq"):
            assert row["values"][impl] > 0 and len(row["runs"][impl]) == 1, (row["case"], impl)
        assert row["values"]["raw"] is None and row["runs"]["raw"] == [], row  # no asyncio raw column
        assert row["ratios"]["zmtp/pyzmq"] > 0 and row["ratios"]["async/blocking"] > 0, row["ratios"]
        assert row["ratios"]["zmtp/raw"] is None


@needs_pyzmq
@pytest.mark.skipif(uvloop_missing(), reason="uvloop is not installed")
def test_async_rows_text_on_uvloop():
    """--loop uvloop runs both sides on uvloop; the text table has the async/blocking column, and the ratio
    column of io_uring is the one that runs the async rows (io_uring's column when it can run)."""
    r = perf("--count", "300", "--runs", "1", "--scenario", "async_pushpull", "--loop", "uvloop",
             "--quiet", "--timeout", "15")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "; async_* rows on the uvloop loop; " in lines[0]
    head = lines[1].split()
    assert head[-1] == "async/blocking"
    rows = {ln.split()[0]: ln.split() for ln in lines[3:5]}
    assert set(rows) == {"pushpull", "async_pushpull"}, lines
    zcol = zmtp_backends()[0]
    cells = dict(zip(head[3:], rows["async_pushpull"][4:]))  # "64 B" is two words
    assert cells[zcol] != "-" and cells["pyzmq"] != "-" and cells["raw"] == "-", cells
    assert all(cells[name] == "-" for name in zmtp_backends()[1:]), cells
    assert cells["async/blocking"] != "-" and rows["pushpull"][-1] == "-", rows
    assert any(ln.startswith("async_* rows: zmtp.asyncio (in the ") for ln in lines), lines
    assert "timeout" not in r.stdout and "error" not in r.stdout


def test_loop_uvloop_missing_is_a_clear_error(monkeypatch, capsys):
    from zmtp import perf as perf_module

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    parser = perf_module.table_parser()
    with pytest.raises(SystemExit) as exc:
        perf_module.make_plan(parser.parse_args(["--loop", "uvloop", "--scenario", "async_reqrep"]), parser)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: --loop uvloop: uvloop is not installed (" in err and "pip install uvloop" in err, err


@pytest.mark.parametrize("scenario", ["async_pushpull", "async_dealer_router"])
def test_async_lost_messages_fail_the_run_with_a_reason(monkeypatch, scenario):
    """The sender skips the warm-up the receiver waits for: the receiver stops short of its count, and the
    run fails at the deadline saying how far the peer got, instead of hanging."""
    from zmtp import perf as perf_module
    from zmtp.perf import scenarios

    monkeypatch.setattr(scenarios, "warmup_count", lambda count: 0)
    impl = perf_module.impl_by_name(zmtp_backends()[-1])
    with pytest.raises(perf_module.CellError) as exc:
        perf_module.run_once(impl, perf_module.Case(scenario, 64, 200), "tcp://127.0.0.1:*", 2.0)
    assert exc.value.kind == "timeout"
    receiver = "router" if scenario == "async_dealer_router" else "pull"
    assert (f"TimeoutError: async_{receiver} peer: deadline passed (timed messages received: 180 of 200 done)"
            in exc.value.detail), exc.value.detail


@pytest.mark.skipif(uvloop_missing(), reason="uvloop is not installed")
def test_async_run_checks_the_peer_loop(monkeypatch):
    """Each async peer names its loop's class in its "ready" line and the driver checks it: a peer started
    without --loop uvloop fails a uvloop run (so the passing uvloop runs above had uvloop on both sides)."""
    from zmtp import perf as perf_module
    from zmtp.perf import scenarios

    class AsyncioPeers(perf_module.Peers):
        def __init__(self, timeout_s: float, loop: str = "asyncio") -> None:
            super().__init__(timeout_s, "asyncio")

    monkeypatch.setattr(scenarios, "Peers", AsyncioPeers)
    impl = perf_module.impl_by_name(zmtp_backends()[-1])
    with pytest.raises(perf_module.CellError) as exc:
        perf_module.run_once(impl, perf_module.Case("async_pushpull", 64, 200), "tcp://127.0.0.1:*", 10.0,
                             "uvloop")
    assert exc.value.kind == "error"
    assert exc.value.detail == "the peer runs on asyncio.unix_events._UnixSelectorEventLoop, not on the uvloop loop"


def test_async_rows_over_ipc():
    """--transport applies to the async rows."""
    r = perf("--count", "300", "--runs", "1", "--scenario", "async_reqrep", "--transport", "ipc",
             "--impl", zmtp_backends()[-1], "--json", "--timeout", "15")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert [(row["case"], row["transport"]) for row in rows] == [("reqrep", "ipc"), ("reqrep", "ipc"),
                                                                 ("async_reqrep", "ipc")]
    assert rows[-1]["values"][zmtp_backends()[-1]] > 0 and rows[-1]["errors"] == {}, rows[-1]


# ---------------------------------------------------------------- the curve_* rows (CURVE beside pyzmq with CURVE)

#: the rows of --scenario curve: curve_pushpull makes a 64 B and a 64 KiB row
CURVE_ROWS = [("curve_reqrep", "p50_us"), ("curve_reqrep", "p99_us"), ("curve_pushpull 64 B", "msg_s"),
              ("curve_pushpull 64 KiB", "msg_s"), ("curve_handshake", "hs_s")]


def one_run_json(scenario: str, count: str) -> Tuple[dict, List[str]]:
    """``--json`` of one run of `scenario` (tiny count) in the last zmtp column, pyzmq and raw: the document
    and the columns that ran (not skipped here)."""
    impls = [zmtp_backends()[-1], "pyzmq", "raw"]
    r = perf("--count", count, "--runs", "1", "--scenario", scenario, "--impl", ",".join(impls), "--json",
             "--timeout", "15")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    return doc, [i for i in impls if i not in doc["skipped"]]


def check_one_run_without_raw(row: dict, running: List[str]) -> None:
    """A row of one run: a figure for each library column that ran, none for raw, the zmtp/pyzmq ratio."""
    for impl in running:
        if impl == "raw":
            assert row["values"]["raw"] is None and row["runs"]["raw"] == [], row
        else:
            assert isinstance(row["values"][impl], float) and row["values"][impl] > 0, (row["case"], impl)
            assert len(row["runs"][impl]) == 1, (row["case"], impl)
    if "pyzmq" in running:
        assert row["ratios"]["zmtp/pyzmq"] > 0, row["ratios"]
    assert row["ratios"].get("zmtp/raw") is None, row["ratios"]


def curve_missing() -> bool:
    import zmtp

    return not zmtp.has("curve")


@pytest.mark.skipif(curve_missing(), reason="CURVE needs libsodium")
def test_curve_rows_json():
    """--scenario curve: every CURVE row has a zmtp and a pyzmq figure (one run each, tiny counts), its ratio,
    the unit and mechanism named; raw has no CURVE column."""
    doc, running = one_run_json("curve", "40")
    assert doc["libsodium"]["zmtp"].startswith("libsodium"), doc["libsodium"]  # the cipher's library, named
    if "pyzmq" in running:
        assert doc["libsodium"]["pyzmq"].startswith("libsodium"), doc["libsodium"]
    assert [(row["case"], row["metric"]) for row in doc["rows"]] == CURVE_ROWS
    assert [row["size"] for row in doc["rows"]] == [64, 64, 64, 65536, 64]
    for row in doc["rows"]:
        assert row["errors"] == {}, row
        assert row["mechanism"] == "CURVE" and row["transport"] == "tcp", row
        assert row["unit"] == {"p50_us": "us", "p99_us": "us", "msg_s": "msg/s", "hs_s": "handshakes/s"}[row["metric"]]
        check_one_run_without_raw(row, running)


@pytest.mark.skipif(curve_missing(), reason="CURVE needs libsodium")
def test_curve_rows_text_and_size():
    """The text table names the curve rows and their targets; --size makes curve_pushpull one row."""
    r = perf("--count", "40", "--runs", "1", "--scenario", "curve_pushpull,curve_handshake", "--size", "1000",
             "--impl", zmtp_backends()[-1], "--quiet", "--timeout", "15")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split("  ")[0].strip() for ln in lines[3:5]] == ["curve_pushpull 1000 B", "curve_handshake"], lines
    assert "handshakes/s" in lines[4]
    assert re.search(r"[0-9]$", lines[3].rstrip(" -")) and re.search(r"[0-9]$", lines[4].rstrip(" -")), lines
    assert any(ln.startswith("curve_* rows: CURVE on both sides") for ln in lines), lines
    assert any(ln.startswith("Targets (issue 17): ") for ln in lines), lines
    assert any(ln.startswith("libsodium (the cipher's speed depends on its version): zmtp libsodium")
               for ln in lines), lines
    assert "timeout" not in r.stdout and "error" not in r.stdout


@pytest.mark.skipif(curve_missing(), reason="CURVE needs libsodium")
@pytest.mark.parametrize("scenario", ["curve_reqrep", "curve_handshake"])
def test_curve_wrong_server_key_is_a_timeout_cell(monkeypatch, scenario):
    """A client given the wrong server key never completes its handshake: the run fails as a clear
    "timeout" cell, with the reason in the footer, instead of hanging."""
    from zmtp import perf as perf_module
    from zmtp.perf import links, table

    original = links.ZmqSide.curve_connect_to

    def wrong_key(self: links.ZmqSide, server_public: bytes) -> None:
        original(self, self.zmq.curve_keypair()[0])  # some other server's key

    monkeypatch.setattr(links.ZmqSide, "curve_connect_to", wrong_key)
    parser = perf_module.table_parser()
    args = parser.parse_args(["--scenario", scenario, "--impl", zmtp_backends()[-1], "--count", "20",
                              "--runs", "1", "--timeout", "2"])
    plan = perf_module.make_plan(args, parser)
    cells = table.run_plan(plan, table.ProgressLine(1, False))
    rows = table.build_rows(plan, cells)
    text = table.render_table(plan, rows, cells)
    body = text.splitlines()[3]
    assert body.split()[0] == scenario and " timeout " in body + " ", text
    assert all(row["values"][zmtp_backends()[-1]] is None for row in rows), rows
    assert any(ln.startswith(f"{scenario} {zmtp_backends()[-1]}: timeout: ") for ln in text.splitlines()), text


def test_curve_group_and_default():
    """--scenario curve is the three curve scenarios; the default run has none of them; --help says how to
    get them."""
    from zmtp import perf as perf_module

    parser = perf_module.table_parser()
    plan = perf_module.make_plan(parser.parse_args(["--scenario", "curve"]), parser)
    assert [c.label for c in plan.cases] == ["curve_reqrep", "curve_pushpull 64 B", "curve_pushpull 64 KiB",
                                             "curve_handshake"]
    assert [c.count for c in plan.cases] == [5000, 100000, 5000, 300]
    plan = perf_module.make_plan(parser.parse_args([]), parser)
    assert not any(c.scenario.startswith("curve") for c in plan.cases)
    text = " ".join(parser.format_help().split())
    assert "curve = curve_reqrep, curve_pushpull, curve_handshake (not in the default run" in text, text
    assert "all but curve_reqrep, curve_pushpull, curve_handshake" in text, text


# ---------------------------------------------------------------- the proxy row (zmtp.proxy beside zmq.proxy)


def test_proxy_row_json_and_text():
    """--scenario proxy: PUSH -> proxy process -> PULL process, a figure for each zmtp column and pyzmq (one
    run, a small count), its ratio; raw has no proxy column; the text table names the target."""
    doc, running = one_run_json("proxy", "2000")
    [row] = doc["rows"]
    assert (row["case"], row["metric"], row["size"], row["count"]) == ("proxy", "msg_s", 64, 2000), row
    assert row["errors"] == {} and row["mechanism"] == "NULL", row
    check_one_run_without_raw(row, running)
    r = perf("--count", "2000", "--runs", "1", "--scenario", "proxy", "--impl", zmtp_backends()[-1], "--quiet",
             "--timeout", "15", "--transport", "ipc")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[3].split()[:3] == ["proxy", "64", "B"], lines
    assert "Target (issue 18): zmtp/pyzmq >= 2 on proxy 64 B." in lines, lines


# ---------------------------------------------------------------- issue 19: the sweep, the C floor, the scale rows


def cc_missing() -> bool:
    from zmtp.perf import cfloor
    return cfloor.compiler() is None


def test_parse_size_and_sweep_counts():
    """--sizes' parser: K/M suffixes (KiB, MiB); a sweep cell's count shrinks with the size, to a few round
    trips at 64 MiB and a stream of 32 (a stream has no warm-up)."""
    from zmtp.perf.config import fmt_size, parse_size, sweep_count
    assert [parse_size(t) for t in ("64", "1K", "8k", "64KiB", "1M", "64MB")] == [
        64, 1024, 8192, 65536, 1 << 20, 64 << 20]
    for bad in ("", "K", "1Q", "x1M"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert [fmt_size(s) for s in (64, 1024, 1 << 20, 64 << 20)] == ["64 B", "1 KiB", "1 MiB", "64 MiB"]
    counts = [sweep_count("pushpull", s) for s in (64, 65536, 1 << 20, 64 << 20)]
    assert counts == sorted(counts, reverse=True) and counts[0] == 200_000 and counts[-1] == 32, counts
    assert sweep_count("reqrep", 64) == 10_000 and sweep_count("reqrep", 16 << 20) <= 10


def test_sizes_bad_value_is_a_clear_error():
    r = perf("--sizes", "64,1Q")
    assert r.returncode == 2 and "not a size: '1Q'" in r.stderr, r.stderr
    r = perf("--sizes", "64", "--size", "64")
    assert r.returncode == 2 and "--size and --sizes" in r.stderr, r.stderr


def test_sweep_json_row_per_size():
    """--sizes: a row per size and metric for pushpull (msg/s, GB/s) and reqrep (p50, p99), every column
    with a figure (zmtp and pyzmq with copy=True and copy=False, each one's best named and in the ratio;
    the C floor), the ratios the targets need (zmtp/C from 1 MiB only)."""
    impls = [zmtp_backends()[-1], "pyzmq", "raw"]
    r = perf("--sizes", "64,1K,1M", "--count", "6", "--runs", "1", "--impl", ",".join(impls + ["c"]), "--json",
             "--timeout", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert [(row["case"], row["metric"]) for row in doc["rows"]] == [
        (f"{sc} {size}", m) for sc, metrics in (("reqrep", ("p50_us", "p99_us")), ("pushpull", ("msg_s", "gb_s")))
        for size in ("64 B", "1 KiB", "1 MiB") for m in metrics]
    running = [i for i in impls if i not in doc["skipped"]]
    if any(i.startswith("zmtp") for i in running):
        running.append("zmtp-nocopy")
    if "pyzmq" in running:
        running.append("pyzmq-nocopy")
    if not cc_missing():
        running.append("c")
    else:
        assert "no C compiler" in doc["skipped"]["c"]
    assert sorted(doc["impls"]) == sorted(running)
    for row in doc["rows"]:
        assert row["sweep"] and row["errors"] == {}, row
        for impl in running:
            assert row["values"][impl] > 0 and len(row["runs"][impl]) == 1, (row["case"], impl)
        if row["metric"] == "gb_s":
            msg_s = next(x for x in doc["rows"] if x["case"] == row["case"] and x["metric"] == "msg_s")
            assert row["values"]["raw"] == pytest.approx(msg_s["values"]["raw"] * row["size"] / 1e9)
        if "pyzmq" in running:
            best = row["pyzmq_best"]
            pick = min if row["lower_is_better"] else max
            assert best["value"] == pick(row["values"]["pyzmq"], row["values"]["pyzmq-nocopy"]), row
            assert best["copy"] == (best["value"] == row["values"]["pyzmq"]), row
            zcol = impls[0]
            zbest = row["zmtp_best"]
            assert zbest["value"] == pick(row["values"][zcol], row["values"]["zmtp-nocopy"]), row
            assert zbest["copy"] == (zbest["value"] == row["values"][zcol]), row
            want = best["value"] / zbest["value"] if row["lower_is_better"] else zbest["value"] / best["value"]
            assert row["ratios"]["zmtp/pyzmq"] == pytest.approx(want, rel=1e-3, abs=1e-4), row
        assert ("zmtp/C" in row["ratios"]) == (row["size"] >= 1 << 20 and "c" in running), row


def test_sweep_text_over_ipc():
    """The sweep's text table over ipc: one row per size and metric, the pyzmq copy column, the targets."""
    r = perf("--sizes", "64,8K", "--scenario", "pushpull", "--count", "50", "--runs", "1", "--quiet",
             "--timeout", "20", "--transport", "ipc", "--impl", f"{zmtp_backends()[-1]},pyzmq,raw")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [ln.split("  ")[0].strip() for ln in lines[3:7]] == ["pushpull 64 B"] * 2 + ["pushpull 8 KiB"] * 2
    assert "ipc" in lines[0]
    if not pyzmq_missing():
        assert "pyzmq copy" in lines[1] and "zmtp copy" in lines[1] and "zmtp-nocopy" in lines[1]
    assert any(ln.startswith("Targets (issue 19): pushpull zmtp/pyzmq >= 1.5") for ln in lines), lines


@pytest.mark.skipif(cc_missing(), reason="the C floor needs a C compiler (cc)")
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_c_floor_builds_and_runs(transport, tmp_path):
    """benchmarks/c_stream.c, built with cc -O2 (cached), streams and ping-pongs over tcp and ipc."""
    from zmtp.perf import cfloor
    binary, why = cfloor.build()
    assert why is None and binary, why
    endpoint = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/floor"
    stream = cfloor.run("stream", endpoint, 300_000, 20, 20)
    assert set(stream) == {"msg_s"} and stream["msg_s"] > 0
    rtt = cfloor.run("pingpong", endpoint, 64, 100, 20)
    assert set(rtt) == {"p50_us", "p99_us"} and 0 < rtt["p50_us"] <= rtt["p99_us"]
    with pytest.raises(RuntimeError, match="usage"):
        cfloor.run("bogus", endpoint, 64, 10, 20)


def test_c_floor_missing_source_is_a_reason(monkeypatch, tmp_path):
    from zmtp.perf import cfloor
    monkeypatch.setenv(cfloor.SOURCE_ENV, str(tmp_path / "nowhere.c"))
    assert "nowhere.c not found" in cfloor.unavailable_reason()


def scale_doc(scenario: str, *extra: str) -> Tuple[dict, List[str]]:
    """``--json`` of one run of a scale scenario in every zmtp column and pyzmq: the document and the columns
    that ran."""
    impls = zmtp_backends() + ["pyzmq"]
    r = perf("--scenario", scenario, "--runs", "1", "--impl", ",".join(impls), "--json", "--timeout", "30", *extra,
             timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    return doc, [i for i in impls if i not in doc["skipped"]]


def test_many_peers_all_served():
    """many_peers with 50 DEALERs (4 client processes): every peer served, a p99, a rate and the RSS per
    idle peer, in each zmtp column and pyzmq."""
    doc, running = scale_doc("many_peers", "--peers", "50", "--count", "3")
    assert [(row["case"], row["metric"]) for row in doc["rows"]] == [
        ("many_peers 50", m) for m in ("served", "p99_us", "msg_s", "rss_kib_per_peer")]
    values = {row["metric"]: row["values"] for row in doc["rows"]}
    for impl in running:
        assert values["served"][impl] == 1.0, impl
        assert values["p99_us"][impl] > 0 and values["msg_s"][impl] > 0, impl
        assert values["rss_kib_per_peer"][impl] >= 0, impl
    assert all(row["errors"] == {} and "note" not in row for row in doc["rows"])


def test_many_peers_that_do_not_fit_are_said(monkeypatch):
    """More DEALERs than RLIMIT_NOFILE's hard limit allows: fewer run, and the reason is given."""
    import resource

    from zmtp.perf import scale
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 1024))
    n, why = scale.peers_that_fit(10_000, 4)
    assert n == 1024 - scale.FD_SPARE and "does not fit RLIMIT_NOFILE's hard limit 1024" in why, (n, why)
    assert scale.peers_that_fit(100, 4) == (100, None)


def test_connect_rate_runs():
    doc, running = scale_doc("connect_rate", "--count", "30")
    [row] = doc["rows"]
    assert (row["case"], row["metric"], row["unit"], row["mechanism"]) == (
        "connect_rate", "conn_s", "connections/s", "NULL"), row
    assert row["errors"] == {}, row
    for impl in running:
        assert row["values"][impl] > 0, impl


def test_big_message_memory_reports_a_ratio():
    """The receiver's peak RSS above idle while receiving one message (4 MiB here), as a ratio to the size:
    at least the message itself (its bytes are resident once received)."""
    doc, running = scale_doc("big_message_memory", "--size", "4M")
    ratio_row, mib_row = doc["rows"]
    assert (ratio_row["metric"], mib_row["metric"], ratio_row["size"]) == ("peak_ratio", "peak_mib", 4 << 20)
    if "pyzmq" in running:
        running.append("pyzmq-nocopy")
        assert ratio_row["pyzmq_best"]["copy"] in (True, False)
    for impl in running:
        assert ratio_row["errors"] == {}, ratio_row
        assert ratio_row["values"][impl] >= 0.9, (impl, ratio_row["values"])
        assert mib_row["values"][impl] == pytest.approx(ratio_row["values"][impl] * 4, rel=1e-6)


def test_plot_sweep_writes_png(tmp_path):
    """benchmarks/plot_sweep.py JSON PNG: a PNG from a sweep's JSON (skipped without matplotlib)."""
    pytest.importorskip("matplotlib")
    rows = []
    for scenario, metrics in (("pushpull", ("msg_s", "gb_s")), ("reqrep", ("p50_us",))):
        for size in (64, 1 << 20):
            for metric in metrics:
                values = {"zmtp-io_uring": 2.0, "zmtp-epoll": 1.5, "pyzmq": 1.0, "pyzmq-nocopy": 1.2, "raw": 0.8,
                          "c": 3.0}
                rows.append({"case": f"{scenario} {size}", "scenario": scenario, "size": size, "metric": metric,
                             "sweep": True, "values": values, "pyzmq_best": {"value": 1.2, "copy": False}})
    src = tmp_path / "sweep.json"
    src.write_text(json.dumps({"zmtp": "0", "pyzmq": "pyzmq x", "transport": "tcp", "runs": 1, "rows": rows}))
    out = tmp_path / "sweep.png"
    script = __import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks" / "plot_sweep.py"
    r = subprocess.run([sys.executable, str(script), str(src), str(out), "--label", "test"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
