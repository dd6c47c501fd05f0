"""Server reflection through grpcio, as grpcurl uses it: list the services,
fetch ChatService's file by symbol (v1 and v1alpha), build a descriptor
pool from the answers alone, and make a JoinChat call with message classes
made from those descriptors, with no generated chat stubs."""

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import reflection_pb2
import reflection_pb2_grpc
import reflection_v1alpha_pb2
import reflection_v1alpha_pb2_grpc
from chatutil import WAIT, channel, check, check_eq, run


def ask(stub, pb2, requests):
    """One reflection stream: the requests in order, their answers."""
    reqs = [pb2.ServerReflectionRequest(host="chat", **r) for r in requests]
    return list(stub.ServerReflectionInfo(iter(reqs), timeout=WAIT))


def main(addr):
    ch = channel(addr)
    for version, pb2, grpc_mod in [
        ("v1", reflection_pb2, reflection_pb2_grpc),
        ("v1alpha", reflection_v1alpha_pb2, reflection_v1alpha_pb2_grpc),
    ]:
        stub = grpc_mod.ServerReflectionStub(ch)
        answers = ask(
            stub,
            pb2,
            [
                {"list_services": ""},
                {"file_containing_symbol": "ChatService"},
                {"file_containing_symbol": "No.Such.Thing"},
                {"file_by_filename": "bidi_chat.proto"},
            ],
        )
        check_eq(len(answers), 4, f"{version}: one answer per request")
        names = [s.name for s in answers[0].list_services_response.service]
        check("ChatService" in names and "grpc.health.v1.Health" in names, f"{version}: services {names}")
        check_eq(answers[0].valid_host, "chat", f"{version}: valid_host echoes host")
        files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in answers[1].file_descriptor_response.file_descriptor_proto]
        check_eq([f.name for f in files], ["chat.proto"], f"{version}: ChatService is in chat.proto")
        check_eq(answers[2].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0], f"{version}: unknown symbol is NOT_FOUND")
        deps = [descriptor_pb2.FileDescriptorProto.FromString(b).name for b in answers[3].file_descriptor_response.file_descriptor_proto]
        check_eq(deps, ["bidi_chat.proto", "google/protobuf/wrappers.proto"], f"{version}: a file comes with its imports")

    # A client that knows only what reflection said.
    pool = descriptor_pool.DescriptorPool()
    for f in files:
        pool.Add(f)
    service = pool.FindServiceByName("ChatService")
    method = service.FindMethodByName("JoinChat")
    check(method.client_streaming and method.server_streaming, "JoinChat is bidirectional")
    msg_class = message_factory.GetMessageClass(method.input_type)
    user_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("User"))
    join = ch.stream_stream(
        f"/{service.full_name}/{method.name}",
        request_serializer=msg_class.SerializeToString,
        response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
    )
    sent = msg_class(user=user_class(user_id="refl", username="Reflected"), message="found by reflection")
    replies = list(join(iter([sent]), timeout=WAIT))
    check_eq([r.message for r in replies], ["found by reflection"], "a call built from reflection alone works")
    ch.close()


if __name__ == "__main__":
    run(main)
