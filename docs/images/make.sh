#!/usr/bin/env bash
# Regenerates the README's pictures (docs/images/digits-*.png) by running the commands printed
# under them, as a user would from a fresh clone: in a scratch copy of configs/ and datasets/,
# with the installed nncli and its plot extra (pip install -e ".[plot]").
#
#   docs/images/make.sh
#
# The files are deterministic: the same nncli, matplotlib and machine give the same bytes, so a
# diff of docs/images/ after running this shows only pictures that really changed.
set -euo pipefail

images="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$images/../.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp -R "$root/configs" "$root/datasets" "$scratch/"
cd "$scratch"

set -x
nncli train configs/digits.yaml --run-dir runs/digits --quiet
nncli plot runs/digits -o digits-curves.png
nncli plot runs/digits/model.npz --weights -o digits-weights.png
nncli plot runs/digits/model.npz datasets/digits.csv --confusion -o digits-confusion.png
nncli plot runs/digits/model.npz datasets/digits.csv --errors 12 -o digits-mistakes.png
nncli train configs/digits-autoencoder.yaml --run-dir runs/digits-autoencoder --quiet
nncli plot runs/digits-autoencoder/model.npz datasets/digits.csv --codes --labels label -o digits-codes.png
{ set +x; } 2>/dev/null

cp digits-curves.png digits-weights.png digits-confusion.png digits-mistakes.png digits-codes.png "$images/"
echo "Wrote $images/digits-{curves,weights,confusion,mistakes,codes}.png"
