"""Seed 004's RouteChat client through grpcio (six notes, every earlier note
at the same location comes back), and the rest of the standard route guide
client: GetFeature, ListFeatures, RecordRoute."""

import grpc

import route_guide_pb2 as rg
import route_guide_pb2_grpc
from chatutil import WAIT, channel, check, check_eq, run


def note(lng, message):
    return rg.RouteNote(location=rg.Point(latitude=0, longitude=lng), message=message)


def main(addr):
    ch = channel(addr)
    stub = route_guide_pb2_grpc.RouteGuideStub(ch)
    notes = [
        note(1, "First message"),
        note(2, "Second message"),
        note(3, "Third message"),
        note(1, "Fourth message"),
        note(2, "Fifth message"),
        note(3, "Sixth message"),
    ]
    call = stub.RouteChat(iter(notes), timeout=WAIT)
    got = []
    for n in call:
        print(f"Got message {n.message} at point({n.location.latitude}, {n.location.longitude})", flush=True)
        got.append(n.message)
    check_eq(
        got,
        [
            "First message", "Second message", "Third message",
            "First message", "Fourth message",
            "Second message", "Fifth message",
            "Third message", "Sixth message",
        ],
        "each note answered with every note at its location",
    )
    check_eq(call.code(), grpc.StatusCode.OK, "RouteChat ends OK")

    known = rg.Point(latitude=407838351, longitude=-746143763)
    f = stub.GetFeature(known, timeout=WAIT)
    check_eq(f.name, "Patriots Path, Mendham, NJ 07945, USA", "GetFeature on a known point")
    check_eq(stub.GetFeature(rg.Point(latitude=1, longitude=1), timeout=WAIT).name, "", "GetFeature elsewhere")
    rect = rg.Rectangle(lo=rg.Point(latitude=400000000, longitude=-750000000), hi=rg.Point(latitude=420000000, longitude=-730000000))
    check_eq(len(list(stub.ListFeatures(rect, timeout=WAIT))), 5, "ListFeatures streams the features in the rectangle")
    summary = stub.RecordRoute(iter([known, rg.Point(latitude=408122808, longitude=-743999179)]), timeout=WAIT)
    check_eq((summary.point_count, summary.feature_count), (2, 2), "RecordRoute counts points and features")
    check(summary.distance > 18000, f"RecordRoute measures the distance ({summary.distance} m)")
    ch.close()


if __name__ == "__main__":
    run(main)
