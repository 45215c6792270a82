"""Weather update server (PUB), as in the ZeroMQ guide: publishes random
"zipcode temperature relhumidity" updates.

    python examples/wuserver.py [endpoint] [count] [zip_range]

Zip codes are drawn from 10000 .. 10000 + zip_range - 1 (default: every
five-digit code).  count = 0 publishes forever, as the guide's server does.

main(context=ctx) uses that Context and leaves it open (server and clients
in threads of one process over inproc://, tests/test_examples.py).
"""

import random
import sys
import time
from typing import Optional

import zmtp as zmq


def main(endpoint: str = "tcp://127.0.0.1:5556", count: int = 100_000, zip_range: int = 90_000,
         context: Optional[zmq.Context] = None) -> None:
    own = context is None
    if own:
        context = zmq.Context()
    publisher = context.socket(zmq.PUB)
    publisher.bind(endpoint)
    # The slow joiner: a subscriber gets only what is published after its
    # subscription arrived.  Give the ones already started a moment.
    time.sleep(0.5)
    random.seed(2)
    sent = 0
    while count == 0 or sent < count:
        zipcode = random.randrange(10000, 10000 + zip_range)
        temperature = random.randrange(-80, 135)
        relhumidity = random.randrange(10, 60)
        publisher.send_string(f"{zipcode} {temperature} {relhumidity}")
        sent += 1
    print(f"Published {sent} updates", flush=True)
    publisher.close()  # LINGER: what is queued is delivered first
    if own:
        context.term()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:1], *(int(a) for a in args[1:3]))
