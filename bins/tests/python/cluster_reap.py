"""A node killed with SIGKILL leaves its rooms within the documented bound
(bins/tests/cluster.rs runs it, and kills the node).

    cluster_reap.py VICTIM_ADDR,SURVIVOR_ADDR ROOM SIGNAL_DIR BOUND_SECONDS

A reader on the surviving node; zed joins on the victim node and stays.
Once the reader has zed's arrival, the script writes SIGNAL_DIR/ready; the
test kills the victim and writes SIGNAL_DIR/killed. zed's departure must
reach the reader once, within BOUND_SECONDS of the kill.
"""

import os
import time

from chatutil import Failure, check, check_eq, run, user
from cluster import Reader, join, wait_for


def main(addrs, room, signal_dir, bound):
    victim, survivor = addrs.split(",")
    reader = Reader(survivor, room, "reader")
    reader.start()
    time.sleep(0.5)
    _zed, _ = join(victim, room, user("zed"))
    wait_for("zed's arrival at the reader", lambda: reader.notices() == [("zed", True)])
    open(os.path.join(signal_dir, "ready"), "w").close()
    killed = os.path.join(signal_dir, "killed")
    deadline = time.monotonic() + 60
    while not os.path.exists(killed):
        if time.monotonic() > deadline:
            raise Failure("the test did not kill the node")
        time.sleep(0.02)
    start = time.monotonic()
    limit = start + float(bound)
    while reader.notices() != [("zed", True), ("zed", False)]:
        if time.monotonic() > limit:
            raise Failure(f"zed has not left {bound} s after the kill: {reader.notices()}")
        time.sleep(0.05)
    print(f"zed left {time.monotonic() - start:.1f} s after the kill", flush=True)
    time.sleep(6.0)  # Another reap round: the departure is not told twice.
    check_eq(reader.notices(), [("zed", True), ("zed", False)], "zed's departure told once")
    check(reader.error is None, "the reader's stream is still fine")
    reader.close()


if __name__ == "__main__":
    run(main)
