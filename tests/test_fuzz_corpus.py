"""Replay the fuzz corpus and every fuzz finding through the decoder, and
the mechanism fuzzer's (fuzz/mech_fuzz.c) through its own replay build.

Each file of fuzz/corpus and fuzz/regressions is decoded as raw traffic (with
and without an expected greeting, with the harness's control byte and without
it), whole and in small chunks: the outcome must be the same both ways and the
process must survive.  The libFuzzer harness (fuzz/decoder_fuzz.c) explores
further; this keeps its findings fixed in the ordinary test run.
"""

from __future__ import annotations

import pathlib

import pytest

from zmtp.codec import Decoder, Message, ProtocolError

ROOT = pathlib.Path(__file__).resolve().parent.parent / "fuzz"
FILES = sorted(p for d in ("corpus", "regressions") if (ROOT / d).is_dir() for p in (ROOT / d).iterdir() if p.is_file())


def outcome(data: bytes, greeting: bool, chunk: int, page: int):
    dec = Decoder(greeting=greeting, read_buf_size=page)
    events = []
    try:
        for i in range(0, len(data), chunk):
            events.extend(dec.feed(data[i : i + chunk]))
    except ProtocolError as exc:
        events.extend(exc.events)
        err = exc.code
    else:
        err = None
    flat = [[(f.bytes, f.more) for f in e.frames] if isinstance(e, Message) else e for e in events]
    return flat, err


def test_corpus_is_present():
    assert len(FILES) >= 20, "fuzz/corpus seeds are missing (python fuzz/make_seeds.py)"


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_replay(path):
    raw = path.read_bytes()
    for data in (raw, raw[1:]):  # with and without the harness's control byte
        for greeting in (True, False):
            whole = outcome(data, greeting, max(1, len(data)), 65536)
            assert outcome(data, greeting, 1, 256) == whole
            assert outcome(data, greeting, 7, 300) == whole


MECH_FILES = sorted(p for d in ("mech_corpus", "mech_regressions") if (ROOT / d).is_dir()
                    for p in (ROOT / d).iterdir() if p.is_file() and not p.name.endswith(".txt"))


def test_mech_corpus_replays(tmp_path):
    """fuzz/mech_fuzz.c built without libFuzzer (-DMECH_FUZZ_MAIN, the
    system compiler, ``-fsanitize=$ZMTP_SANITIZE`` when set) replays every
    seed and finding of the mechanisms' fuzzer: all its checks hold."""
    import os
    import shutil
    import subprocess

    cc = os.environ.get("CC") or "cc"
    src = ROOT.parent / "src"
    if shutil.which(cc) is None or not (src / "mech_curve.c").exists():
        pytest.skip("no C compiler or no C sources")
    assert len(MECH_FILES) >= 30, "fuzz/mech_corpus is missing (python fuzz/make_seeds.py --mech)"
    exe = tmp_path / "mech_replay"
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-DMECH_FUZZ_MAIN", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           f"-I{src}", f"-I{ROOT.parent / 'tests' / 'c'}"]
    sanitize = os.environ.get("ZMTP_SANITIZE", "").strip()
    if sanitize:
        cmd += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
    cmd += [str(ROOT / "mech_fuzz.c"), str(ROOT.parent / "tests" / "c" / "det_sodium.c")]
    cmd += [str(src / f) for f in ("mechanism.c", "mech_null.c", "mech_plain.c", "mech_curve.c", "codec.c",
                                   "msg.c", "arena.c", "counters.c")]
    cmd += ["-o", str(exe), "-ldl", "-lpthread"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = dict(os.environ)
    if not sanitize:
        env.pop("LD_PRELOAD", None)
    run = subprocess.run([str(exe)] + [str(p) for p in MECH_FILES], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert run.stdout.count("ok ") == len(MECH_FILES), run.stdout
