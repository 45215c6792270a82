"""Task sink (PULL): collects the workers' results and times the batch.

    python examples/tasksink.py [sink_endpoint]
"""

import sys
import time

import zmtp as zmq


def main(sink_ep: str = "tcp://127.0.0.1:5558") -> int:
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
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
