"""The grpc.testing interop protos (proto/grpc/testing/) for the grpcio
interop scripts, compiled with grpc_tools when imported.

grpc_tools.protoc would write them as a `grpc.testing` Python package,
which the `grpc` library itself shadows; so they are copied flat into a
temporary directory with their imports renamed, compiled there, imported,
and the directory removed. Use `messages`, `empty` and `test_grpc`.
"""

import importlib
import os
import shutil
import sys
import tempfile

import grpc_tools
from grpc_tools import protoc

_PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "proto", "grpc", "testing")
_FILES = ("empty", "messages", "test")


def _compile():
    out = tempfile.mkdtemp(prefix="interop-stubs-")
    try:
        for name in _FILES:
            with open(os.path.join(_PROTO_DIR, f"{name}.proto"), encoding="utf-8") as f:
                text = f.read().replace('import "grpc/testing/', 'import "interop_')
            with open(os.path.join(out, f"interop_{name}.proto"), "w", encoding="utf-8") as f:
                f.write(text)
        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        args = ["protoc", f"-I{out}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
        args += [os.path.join(out, f"interop_{name}.proto") for name in _FILES]
        if protoc.main(args) != 0:
            raise RuntimeError(f"grpc_tools.protoc failed on {_PROTO_DIR}")
        sys.path.insert(0, out)
        try:
            return tuple(
                importlib.import_module(m)
                for m in ("interop_empty_pb2", "interop_messages_pb2", "interop_test_pb2_grpc")
            )
        finally:
            sys.path.remove(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


empty, messages, test_grpc = _compile()
