#!/usr/bin/env bash
# Builds the grpc-go baseline (main.go here) with Debian's Go and grpc-go
# (1.33), installing them with apt when missing, as bins/tests/go/interop.sh
# does: GOPATH mode, chat.pb.go generated from proto/chat.proto by Debian's
# protoc-gen-go. Prints the binary's path.
#
#   bash bins/bench/grpc-go-baseline/build.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=${CARGO_TARGET_DIR:-$root/target}/grpc-go-baseline
bin=$out/grpc-go-chat-server
gocode=/usr/share/gocode/src

if ! command -v go >/dev/null || ! command -v protoc >/dev/null ||
  [ ! -d "$gocode/google.golang.org/grpc" ] ||
  [ ! -d "$gocode/github.com/golang/protobuf/protoc-gen-go" ]; then
  echo "installing go, grpc-go and protoc from Debian" >&2
  apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y \
    golang-go golang-google-grpc-dev protobuf-compiler >&2
fi

gopath=$out/gopath
pkg=$gopath/src/grpcchatbaseline
mkdir -p "$pkg" "$gopath/bin"
export GO111MODULE=off GOPATH=$gopath:/usr/share/gocode GOCACHE=$out/gocache
[ -x "$gopath/bin/protoc-gen-go" ] ||
  GOBIN=$gopath/bin go install github.com/golang/protobuf/protoc-gen-go
cp "$here/main.go" "$pkg/main.go"
# chat.proto has no go_package (it keeps the seed's): M places it.
mkdir -p "$pkg/chatpb"
PATH=$gopath/bin:$PATH protoc -I "$root/proto" \
  --go_out="plugins=grpc,paths=source_relative,Mchat.proto=grpcchatbaseline/chatpb:$pkg/chatpb" chat.proto
go build -o "$bin.tmp" grpcchatbaseline
mv "$bin.tmp" "$bin"
echo "$bin"
