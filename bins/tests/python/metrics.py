"""The metrics endpoint, scraped with urllib as Prometheus would, while
grpcio calls are made (bins/tests/metrics.rs runs it).

    metrics.py HOST:PORT METRICS_URL

Figures move as calls are made: calls started and ended by method and
code, connections, shard busy time, messages posted and delivered, request bytes, store
commits; a refused login is counted; another path gets 404.
"""

import re
import urllib.error
import urllib.request

import grpc

import chat_pb2
from chatutil import WAIT, channel, check, check_eq, expect_error, round_trip, run, stub, user


def scrape(url):
    with urllib.request.urlopen(url, timeout=WAIT) as r:
        check_eq(r.status, 200, "GET /metrics")
        kind = r.headers.get("content-type", "")
        check("text" in kind, f"a text exposition: {kind}")
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return values


def get(values, pattern):
    return sum(v for k, v in values.items() if re.fullmatch(pattern, k))


def main(addr, url):
    before = scrape(url)
    ch = channel(addr)
    st = stub(ch)
    for i in range(3):
        round_trip(st, user("m1"), f"hello {i}")
    expect_error(
        lambda: list(st.JoinChat(iter([]), metadata=[("authorization", "Bearer nope")], timeout=WAIT)),
        grpc.StatusCode.UNAUTHENTICATED,
        "a bad token",
    )
    expect_error(
        lambda: st.History(chat_pb2.HistoryRequest(room_id="r" * 1000), timeout=WAIT),
        grpc.StatusCode.INVALID_ARGUMENT,
        "History of a room id too long",
    )
    after = scrape(url)
    join = r'chat_calls_started_total\{method="/ChatService/JoinChat"\}'
    check_eq(get(after, join) - get(before, join), 4.0, "JoinChat calls started")
    ok = r'chat_calls_ended_total\{method="/ChatService/JoinChat",code="OK"\}'
    check_eq(get(after, ok) - get(before, ok), 3.0, "JoinChat calls ended OK")
    unauth = r'chat_calls_ended_total\{method="/ChatService/JoinChat",code="UNAUTHENTICATED"\}'
    check_eq(get(after, unauth) - get(before, unauth), 1.0, "one ended UNAUTHENTICATED")
    # Codes by their names in statuscodes.md, underscores and all.
    bad = r'chat_calls_ended_total\{method="/ChatService/History",code="INVALID_ARGUMENT"\}'
    check_eq(get(after, bad) - get(before, bad), 1.0, "one History ended INVALID_ARGUMENT")
    check_eq(get(after, r"chat_messages_posted_total") - get(before, r"chat_messages_posted_total"), 3.0, "messages posted")
    check(get(after, r"chat_messages_delivered_total") >= get(before, r"chat_messages_delivered_total") + 3, "messages delivered")
    check(get(after, r"chat_request_bytes_total") > get(before, r"chat_request_bytes_total"), "request bytes")
    check(get(after, r"chat_response_bytes_total") > get(before, r"chat_response_bytes_total"), "response bytes")
    check(get(after, r"chat_connections") >= 1, "connections open")
    check(get(after, r'chat_shard_busy_seconds_total\{shard="0"\}') > 0, "shard 0 has been busy")
    check(get(after, r"chat_refused_logins_total") >= get(before, r"chat_refused_logins_total") + 1, "the refused login")
    check(get(after, r"chat_store_commits_total") >= 1, "store commits")
    check(get(after, r'chat_store_commit_seconds_bucket\{le="\+Inf"\}') == get(after, r"chat_store_commit_seconds_count"), "the histogram adds up")
    try:
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=WAIT)
        raise AssertionError("another path answered")
    except urllib.error.HTTPError as e:
        check_eq(e.code, 404, "another path")
    ch.close()


if __name__ == "__main__":
    run(main)
