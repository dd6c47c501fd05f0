"""Exits 0 if this interpreter has grpc and grpc_tools, at the exact
versions pinned (name==version) in the requirements file given as argv[1]."""

import importlib.metadata
import sys

import grpc  # noqa: F401
import grpc_tools.protoc  # noqa: F401

for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if "==" not in line:
        continue
    name, version = (part.strip() for part in line.split("==", 1))
    have = importlib.metadata.version(name)
    if have != version:
        print(f"{name} is {have}, want {version}", file=sys.stderr)
        sys.exit(1)
