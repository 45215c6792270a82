"""Asynchronous client/server (the guide's asyncsrv): DEALER clients, a ROUTER
frontend, a DEALER backend and DEALER workers, each in its own thread.

The guide joins frontend and backend with zmq.proxy; here the broker is a
Poller loop, which stops once the clients are done.  From the command line
each task has a Context of its own and the sockets meet over ipc://;
main(context=ctx) puts every task in that one Context and joins them over
inproc:// instead, as the guide's server does with its backend (the Context
is left open).

    python examples/asyncsrv.py [clients] [requests_per_client]
"""

import itertools
import os
import sys
import tempfile
import threading
from typing import Optional

import zmtp as zmq

_runs = itertools.count()


def client_task(ident: int, frontend: str, requests: int, results: list, shared: Optional[zmq.Context] = None) -> None:
    ctx = shared or zmq.Context()
    socket = ctx.socket(zmq.DEALER)
    socket.routing_id = f"client-{ident}".encode()
    socket.rcvtimeo = 10000
    socket.connect(frontend)
    replies = 0
    for n in range(requests):
        socket.send_string(f"request #{n}")
        # The server answers each request with 1..3 replies; read them all.
        while True:
            reply = socket.recv_string()
            replies += 1
            if reply.endswith("last"):
                break
    results.append((ident, replies))
    socket.close()
    if shared is None:
        ctx.term()


def worker_task(backend: str, stop: threading.Event, shared: Optional[zmq.Context] = None) -> None:
    ctx = shared or zmq.Context()
    worker = ctx.socket(zmq.DEALER)
    worker.connect(backend)
    worker.rcvtimeo = 100
    while not stop.is_set():
        try:
            ident, msg = worker.recv_multipart()
        except zmq.Again:
            continue
        n = int(msg.split(b"#")[1])
        replies = 1 + n % 3
        for i in range(replies):
            tail = b" last" if i == replies - 1 else b""
            worker.send_multipart([ident, msg + b" reply " + str(i).encode() + tail])
    worker.close(linger=0)
    if shared is None:
        ctx.term()


def server_task(frontend_ep: str, backend_ep: str, workers: int, ready: threading.Event, stop: threading.Event,
                shared: Optional[zmq.Context] = None) -> None:
    ctx = shared or zmq.Context()
    frontend = ctx.socket(zmq.ROUTER)
    frontend.bind(frontend_ep)
    backend = ctx.socket(zmq.DEALER)
    backend.bind(backend_ep)
    threads = [threading.Thread(target=worker_task, args=(backend_ep, stop, shared)) for _ in range(workers)]
    for t in threads:
        t.start()
    ready.set()
    poller = zmq.Poller()
    poller.register(frontend, zmq.POLLIN)
    poller.register(backend, zmq.POLLIN)
    while not stop.is_set():
        for sock, _ in poller.poll(100):
            if sock is frontend:
                backend.send_multipart(frontend.recv_multipart())
            else:
                frontend.send_multipart(backend.recv_multipart())
    for t in threads:
        t.join()
    frontend.close(linger=0)
    backend.close(linger=0)
    if shared is None:
        ctx.term()


def main(clients: int = 3, requests: int = 5, context: Optional[zmq.Context] = None) -> int:
    if context is None:
        path = os.path.join(tempfile.mkdtemp(), "backend.ipc")
        frontend, backend = f"ipc://{path}.front", f"ipc://{path}"
    else:  # names of this run: main() may run twice in one Context
        run = f"asyncsrv-{os.getpid()}-{next(_runs)}"
        frontend, backend = f"inproc://{run}-frontend", f"inproc://{run}-backend"
    ready, stop = threading.Event(), threading.Event()
    server = threading.Thread(target=server_task, args=(frontend, backend, 2, ready, stop, context))
    server.start()
    ready.wait()
    results: list = []
    cts = [threading.Thread(target=client_task, args=(i, frontend, requests, results, context)) for i in range(clients)]
    for t in cts:
        t.start()
    for t in cts:
        t.join()
    stop.set()
    server.join()
    expected = sum(1 + n % 3 for n in range(requests))
    for ident, replies in sorted(results):
        print(f"client-{ident}: {replies} replies (expected {expected})")
    return 0 if len(results) == clients and all(r == expected for _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
