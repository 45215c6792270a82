"""Weather update client (SUB), as in the ZeroMQ guide: subscribes to one
zip code and averages its temperature over some updates.

    python examples/wuclient.py [endpoint] [zipcode] [updates]

main(context=ctx) uses that Context and leaves it open (server and clients
in threads of one process over inproc://, tests/test_examples.py).
"""

import sys
from typing import Optional

import zmtp as zmq


def main(endpoint: str = "tcp://127.0.0.1:5556", zipcode: str = "10001", updates: int = 5,
         context: Optional[zmq.Context] = None) -> None:
    own = context is None
    if own:
        context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.rcvtimeo = 20000  # the guide waits forever; a test should not
    print("Collecting updates from weather server...", flush=True)
    subscriber.connect(endpoint)
    # Only messages starting with the zip code (zip codes have five digits,
    # so "10001" does not match "100012").
    subscriber.subscribe(zipcode)
    total_temp = 0
    for _ in range(updates):
        string = subscriber.recv_string()
        zip_code, temperature, relhumidity = string.split()
        assert zip_code == zipcode, string  # the filter is the publisher's
        total_temp += int(temperature)
    print(f"Average temperature for zipcode '{zipcode}' was {total_temp / updates:.1f} F "
          f"({updates} updates)", flush=True)
    subscriber.close()
    if own:
        context.term()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:2], *(int(a) for a in args[2:3]))
