"""Task sink (PULL): collects the workers' results and times the batch.

    python examples/tasksink.py [sink_endpoint]

main(context=ctx) uses that Context and leaves it open (the pipeline in
threads of one process over inproc://, tests/test_examples.py).
"""

import sys
import time
from typing import Optional

import zmtp as zmq


def main(sink_ep: str = "tcp://127.0.0.1:5558", context: Optional[zmq.Context] = None) -> int:
    own = context is None
    if own:
        context = zmq.Context()
    receiver = context.socket(zmq.PULL)
    receiver.bind(sink_ep)
    receiver.rcvtimeo = 30000
    tasks = int(receiver.recv())  # the batch size, from the ventilator
    start = time.time()
    for _ in range(tasks):
        receiver.recv()
    print(f"Collected {tasks} results; total elapsed time: {(time.time() - start) * 1000:.0f} msec", flush=True)
    receiver.close()
    if own:
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
