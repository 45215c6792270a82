"""Hello World client (REQ), as in the ZeroMQ guide: sends "Hello", waits for "World".

    python examples/hwclient.py [endpoint] [count]
"""

import sys

import zmtp as zmq


def main(endpoint: str = "tcp://127.0.0.1:5555", count: int = 10) -> None:
    context = zmq.Context()
    print("Connecting to hello world server...", flush=True)
    socket = context.socket(zmq.REQ)
    socket.rcvtimeo = 10000
    socket.connect(endpoint)
    for request in range(count):
        socket.send(b"Hello")
        message = socket.recv()
        print(f"Received reply {request} [ {message!r} ]", flush=True)
    socket.close()
    context.term()


if __name__ == "__main__":
    main(*(sys.argv[1:2] or []), *(int(a) for a in sys.argv[2:3]))
