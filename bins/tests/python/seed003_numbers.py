"""Seed 003's client through grpcio: 1..10 under a one-second deadline, ten
running sums; and a client too slow for its deadline gets DEADLINE_EXCEEDED."""

import time

import grpc

import number_pb2
import number_pb2_grpc
from chatutil import channel, check_eq, expect_error, run


def main(addr):
    ch = channel(addr)
    stub = number_pb2_grpc.NumberServiceStub(ch)
    call = stub.AccumulateNumbers((number_pb2.NumberRequest(num=i) for i in range(1, 11)), timeout=1.0)
    sums = []
    for res in call:
        print(f"Sum: {res.sum}", flush=True)
        sums.append(res.sum)
    check_eq(sums, [1, 3, 6, 10, 15, 21, 28, 36, 45, 55], "ten running sums")
    check_eq(call.code(), grpc.StatusCode.OK, "done within the one-second deadline")

    def slow():
        for i in range(1, 11):
            if i == 3:
                time.sleep(1.5)
            yield number_pb2.NumberRequest(num=i)

    expect_error(lambda: list(stub.AccumulateNumbers(slow(), timeout=1.0)), grpc.StatusCode.DEADLINE_EXCEEDED, "past the deadline")
    ch.close()


if __name__ == "__main__":
    run(main)
