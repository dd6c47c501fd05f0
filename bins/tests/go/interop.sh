#!/usr/bin/env bash
# Runs grpc-go's interop client (Debian's grpc-go 1.33) against a
# grpc.testing.TestService at 127.0.0.1:$1, one process per test case, as
# grpc/grpc doc/interop-test-descriptions.md describes them.
#
# Debian's golang-google-grpc-dev leaves out interop/ (DH_GOLANG_EXCLUDES in
# its debian/rules), so interop/ is taken from the same Debian source
# package with `apt-get source`, and its test.proto is compiled again with
# Debian's protoc-gen-go, as Debian does for the rest of grpc-go.
set -euo pipefail

port=${1:?usage: interop.sh PORT}
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${CARGO_TARGET_DIR:-$root/target}/go-interop
client=$out/go-interop-client
gocode=/usr/share/gocode/src

# The cases of grpc-go 1.33's client that need no cloud credentials.
cases=(
  empty_unary large_unary client_streaming server_streaming ping_pong
  empty_stream timeout_on_sleeping_server cancel_after_begin
  cancel_after_first_response status_code_and_message special_status_message
  custom_metadata unimplemented_method unimplemented_service pick_first_unary
)

if ! command -v go >/dev/null || ! command -v protoc >/dev/null ||
  [ ! -d "$gocode/google.golang.org/grpc" ] ||
  [ ! -d "$gocode/github.com/golang/protobuf/protoc-gen-go" ]; then
  echo "installing go, grpc-go and protoc from Debian" >&2
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
    golang-go golang-google-grpc-dev protobuf-compiler; }; then
    echo "interop.sh: cannot install golang-go golang-google-grpc-dev" \
      "protobuf-compiler (needs root and a Debian apt mirror)" >&2
    exit 2
  fi
fi

if [ ! -x "$client" ]; then
  mkdir -p "$out"
  # Debian source package, through a private deb-src list.
  apt="$out/apt"
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  mkdir -p "$apt/parts" "$apt/lists/partial" "$apt/src"
  cat >"$apt/parts/src.sources" <<EOF
Types: deb-src
URIs: ${DEBIAN_MIRROR:-http://deb.debian.org/debian}
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/parts"
    -o "Dir::State::Lists=$apt/lists" -o APT::Sandbox::User=root)
  version=$(dpkg-query -W -f='${Version}' golang-google-grpc-dev)
  apt-get "${opts[@]}" -qq update
  (cd "$apt/src" && apt-get "${opts[@]}" -qq source --download-only \
    "golang-google-grpc=$version")

  # GOPATH: Debian's grpc-go plus interop/ from the source tarball.
  gopath=$out/gopath
  grpc=$gopath/src/google.golang.org/grpc
  rm -rf "$gopath"
  mkdir -p "$grpc" "$gopath/bin"
  cp -r "$gocode/google.golang.org/grpc/." "$grpc"
  tar -xJf "$apt"/src/golang-google-grpc_*.orig.tar.xz -C "$grpc" \
    --strip-components=1 --wildcards '*/interop/client' \
    '*/interop/grpc_testing' '*/interop/test_utils.go'

  export GO111MODULE=off GOPATH=$gopath:/usr/share/gocode GOCACHE=$out/gocache
  GOBIN=$gopath/bin go install github.com/golang/protobuf/protoc-gen-go
  (cd "$grpc/interop/grpc_testing" && rm -f ./*.pb.go &&
    PATH=$gopath/bin:$PATH protoc \
      --go_out=plugins=grpc,paths=source_relative:. test.proto)
  go build -o "$client.tmp" google.golang.org/grpc/interop/client
  mv "$client.tmp" "$client"
fi

failed=0
for case in "${cases[@]}"; do
  # The client dials with grpc.WithBlock, so a dead server shows as a timeout.
  rc=0
  log=$(timeout 20 "$client" --server_host=127.0.0.1 \
    --server_port="$port" --test_case="$case" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "PASS $case"
  else
    if [ "$rc" -eq 124 ]; then log+=$'\ntimed out after 20s'; fi
    echo "FAIL $case (exit $rc)"
    printf '%s\n' "$log" | tail -n 20 | sed 's/^/    /'
    failed=1
  fi
done
exit "$failed"
