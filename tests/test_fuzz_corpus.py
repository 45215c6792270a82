"""Replay the fuzz corpus and every fuzz finding through the decoder.

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
