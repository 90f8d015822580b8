"""``python -m bench.http_receiver``: the tests' recording HTTP receiver in a process of its
own, so its threads do not share the bench worker's GIL. Prints its URL, serves until SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading

from tests.receiver import Receiver

SECRET = "s3cret"


def main() -> None:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with Receiver(secret=SECRET) as receiver:
        print(receiver.url, flush=True)
        done.wait()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
