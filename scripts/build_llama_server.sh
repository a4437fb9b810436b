#!/usr/bin/env bash
# Build llama.cpp's own OpenAI-compatible server, `llama-server`, for the tests of the
# inference-server backend's `llama.cpp` engine (tests/worker/test_openai_backend.py).
#
# The source is the llama.cpp that llama-cpp-python vendors (the version pinned in
# requirements.lock, fetched from PyPI with pip: no other download). Built once per machine
# into LLAMA_SERVER_HOME (default ~/.cache/appreciation/llama-server-VERSION); prints the
# binary's path. 17 minutes on a 2-core EPYC shared with other jobs; nothing when built.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^llama_cpp_python==//p' requirements.lock)
home=${LLAMA_SERVER_HOME:-$HOME/.cache/appreciation/llama-server-$version}
binary="$home/build/bin/llama-server"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
mkdir -p "$home"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python -m pip download --quiet --no-deps --no-binary :all: \
  "llama-cpp-python==$version" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
source_dir="$work/llama_cpp_python-$version/vendor/llama.cpp"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S "$source_dir" -B "$home/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON >&2
cmake --build "$home/build" --target llama-server -j "$(nproc)" >&2
echo "$binary"
