"""Hello World server (REP), as in the ZeroMQ guide: answers "World" to each "Hello".

    python examples/hwserver.py [endpoint] [count]
"""

import sys

import zmtp as zmq


def main(endpoint: str = "tcp://127.0.0.1:5555", count: int = 10) -> None:
    context = zmq.Context()
    socket = context.socket(zmq.REP)
    socket.bind(endpoint)
    for _ in range(count):
        message = socket.recv()
        print(f"Received request: {message!r}", flush=True)
        socket.send(b"World")
    socket.close()
    context.term()


if __name__ == "__main__":
    main(*(sys.argv[1:2] or []), *(int(a) for a in sys.argv[2:3]))
