"""Task worker (PULL -> PUSH): does the work and reports to the sink.

    python examples/taskwork.py [vent_endpoint] [sink_endpoint] [idle_timeout_ms]

main(context=ctx) uses that Context and leaves it open (the pipeline in
threads of one process over inproc://, tests/test_examples.py).
"""

import sys
import time
from typing import Optional

import zmtp as zmq


def main(vent: str = "tcp://127.0.0.1:5557", sink_ep: str = "tcp://127.0.0.1:5558", idle_ms: int = 3000,
         context: Optional[zmq.Context] = None) -> None:
    own = context is None
    if own:
        context = zmq.Context()
    receiver = context.socket(zmq.PULL)
    receiver.connect(vent)
    receiver.rcvtimeo = idle_ms
    sender = context.socket(zmq.PUSH)
    sender.connect(sink_ep)
    done = 0
    while True:
        try:
            s = receiver.recv()
        except zmq.Again:
            break  # no more work: the ventilator is done
        time.sleep(int(s) * 0.001)
        sender.send(b"")
        done += 1
    print(f"worker did {done} tasks", flush=True)
    receiver.close()
    sender.close()
    if own:
        context.term()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:2], *(int(a) for a in args[2:3]))
