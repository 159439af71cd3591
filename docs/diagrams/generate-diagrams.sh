#!/usr/bin/env bash
# Renders every PlantUML source in this folder (*.puml, written by `make generate` from the
# code) to a PNG beside it. Needs plantuml (Debian package `plantuml`, which brings a JRE;
# `make deps` installs it). The PNGs are committed; the drift test checks only the sources.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v plantuml >/dev/null 2>&1; then
    echo "generate-diagrams: plantuml not found (apt-get install plantuml, or make deps)" >&2
    exit 1
fi
# -failfast2: stop at the first syntax error instead of drawing it into the PNG.
PLANTUML_LIMIT_SIZE=8192 plantuml -tpng -failfast2 -nometadata ./*.puml
for f in ./*.puml; do
    echo "rendered ${f%.puml}.png"
done
