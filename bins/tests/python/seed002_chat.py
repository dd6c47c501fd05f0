"""Seed 002's client (Ballerina's bidirectional example) through grpcio:
three messages, then complete; every answer arrives, then the server
completes its stream too (half-close, then drain)."""

import threading

import grpc

import bidi_chat_pb2
import bidi_chat_pb2_grpc
from chatutil import WAIT, Requests, channel, check_eq, run


def main(addr):
    ch = channel(addr)
    stub = bidi_chat_pb2_grpc.ChatStub(ch)
    requests = Requests()
    call = stub.chat(requests, timeout=WAIT)
    answers = []

    def read():  # the seed reads responses in another strand
        for s in call:
            print(s.value, flush=True)
            answers.append(s.value)

    reader = threading.Thread(target=read)
    reader.start()
    for name, message in [("Sam", "Hi"), ("Ann", "Hey"), ("John", "Hello")]:
        requests.send(bidi_chat_pb2.BidiChatMessage(name=name, message=message))
    requests.close()  # complete
    reader.join(WAIT)
    check_eq(answers, ["Sam: Hi", "Ann: Hey", "John: Hello"], "every message answered, in order")
    check_eq(call.code(), grpc.StatusCode.OK, "the server completes after the last answer")
    ch.close()


if __name__ == "__main__":
    run(main)
