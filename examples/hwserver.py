"""Hello World server (REP), as in the ZeroMQ guide: answers "World" to each "Hello".

    python examples/hwserver.py [endpoint] [count]

main(context=ctx) uses that Context (and leaves it open), so a server and a
client can run in threads of one process over inproc:// (tests/test_examples.py).
"""

import sys
from typing import Optional

import zmtp as zmq


def main(endpoint: str = "tcp://127.0.0.1:5555", count: int = 10, context: Optional[zmq.Context] = None) -> None:
    own = context is None
    if own:
        context = zmq.Context()
    socket = context.socket(zmq.REP)
    socket.bind(endpoint)
    for _ in range(count):
        message = socket.recv()
        print(f"Received request: {message!r}", flush=True)
        socket.send(b"World")
    socket.close()
    if own:
        context.term()


if __name__ == "__main__":
    main(*(sys.argv[1:2] or []), *(int(a) for a in sys.argv[2:3]))
