"""``python -m zmtp.curve_keygen``: print a new CURVE key pair, as libzmq's
``curve_keygen`` tool prints it (public key, then secret key, Z85)."""

from __future__ import annotations

import sys

from zmtp.curve import curve_keypair


def main() -> int:
    """Print a new key pair; 1 with the reason when CURVE is unavailable."""
    try:
        public, secret = curve_keypair()
    except RuntimeError as e:
        print("curve_keygen: %s" % e, file=sys.stderr)
        return 1
    print("== CURVE PUBLIC KEY ==")
    print(public.decode("ascii"))
    print("== CURVE SECRET KEY ==")
    print(secret.decode("ascii"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
