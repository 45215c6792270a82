"""Task ventilator (PUSH), from the guide's divide-and-conquer pipeline.

Sends `tasks` workloads (milliseconds of "work") to workers and the count to
the sink first.

    python examples/taskvent.py [vent_endpoint] [sink_endpoint] [tasks]

main(context=ctx) uses that Context and leaves it open (the pipeline in
threads of one process over inproc://, tests/test_examples.py).
"""

import random
import sys
import time
from typing import Optional

import zmtp as zmq


def main(vent: str = "tcp://127.0.0.1:5557", sink_ep: str = "tcp://127.0.0.1:5558", tasks: int = 100,
         context: Optional[zmq.Context] = None) -> None:
    own = context is None
    if own:
        context = zmq.Context()
    sender = context.socket(zmq.PUSH)
    sender.bind(vent)
    sink = context.socket(zmq.PUSH)
    sink.connect(sink_ep)
    # Tell the sink how many results to expect (also the signal of a start).
    sink.send_string(str(tasks))
    time.sleep(0.5)  # let the workers connect, so work is spread (guide style)
    random.seed(1)
    total_msec = 0
    for _ in range(tasks):
        workload = random.randint(1, 10)
        total_msec += workload
        sender.send_string(str(workload))
    print(f"Total expected cost: {total_msec} msec", flush=True)
    sender.close()  # LINGER: the queue is delivered before close returns
    sink.close()
    if own:
        context.term()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:2], *(int(a) for a in args[2:3]))
