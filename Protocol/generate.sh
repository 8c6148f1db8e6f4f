#!/usr/bin/env bash
# Regenerates Sources/CloakProtocol/Generated/ from Protocol/cloak.proto.
# Needs `protoc` (Debian: protobuf-compiler) and `protoc-gen-swift` built from apple/swift-protobuf
# at the same version as the runtime in Package.swift (1.39.0):
#   git clone --branch 1.39.0 https://github.com/apple/swift-protobuf.git /tmp/swift-protobuf-src
#   (cd /tmp/swift-protobuf-src && swift build -c release --product protoc-gen-swift)
#   PROTOC_GEN_SWIFT=/tmp/swift-protobuf-src/.build/release/protoc-gen-swift Protocol/generate.sh
# The output is committed; CI never runs this.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
[ -x "$plugin" ] || { echo "generate.sh: set PROTOC_GEN_SWIFT to a protoc-gen-swift 1.39.0 binary" >&2; exit 1; }
out="$here/Sources/CloakProtocol/Generated"
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true \
  --swift_out="$out" -I "$here/Protocol" "$here/Protocol/cloak.proto"
echo "generated $(ls "$out"/*.pb.swift)"
