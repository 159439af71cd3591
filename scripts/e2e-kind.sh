#!/usr/bin/env bash
# make e2e-kind: the end-to-end suite (e2e/) against a kind cluster.
#
# Creates a kind cluster (KIND_CLUSTER, default prismicx-e2e), builds the operator and service
# images from images/Dockerfile and loads them into it, installs the chart with in-cluster
# databases (two steps: the first install creates the CRDs, the upgrade adds the
# DatabaseServices), waits for the services, port-forwards them to 127.0.0.1, and runs the same
# suite `make test` runs locally, pointed at the cluster through PRISMICX_E2E_*. The cluster is
# deleted afterwards unless KEEP_CLUSTER=1.
#
# Needs docker and kind on PATH (neither exists on the project's build machines, so this
# target has not been run there); helm and kubectl come from `make deps`.
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS="${PRISMICX_TOOLS_DIR:-$HOME/.cache/prismicx/tools}"
HELM="$TOOLS/bin/helm"
KUBECTL="$TOOLS/bin/kubectl"
CLUSTER="${KIND_CLUSTER:-prismicx-e2e}"
NS=prismicx
RELEASE=prismicx
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
BINARIES=(prismicx-operator tenant-mgmt-service user-data-service task-repo-service
          category-repository-service management-system-repo vector-store-service)
# Service name, port, local port of the port-forward.
SERVICES=("tenant-mgmt-service 8501 18501" "user-data-service 8502 18502" "task-repo-service 8503 18503"
          "category-repository-service 8504 18504" "management-system-repo 8505 18505"
          "vector-store-service 8510 18510")

for tool in docker kind; do
    command -v "$tool" >/dev/null || { echo "e2e-kind needs $tool on PATH" >&2; exit 1; }
done
[[ -x "$HELM" && -x "$KUBECTL" ]] || { echo "run make deps first (helm, kubectl)" >&2; exit 1; }

WORK="$(mktemp -d)"
FORWARDS=()
cleanup() {
    for pid in "${FORWARDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then kind delete cluster --name "$CLUSTER" || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind get kubeconfig --name "$CLUSTER" > "$WORK/kubeconfig"
export KUBECONFIG="$WORK/kubeconfig"

for bin in "${BINARIES[@]}"; do
    docker build -f images/Dockerfile --build-arg "BINARY=$bin" -t "prismicx/$bin:$VERSION" .
    kind load docker-image --name "$CLUSTER" "prismicx/$bin:$VERSION"
done

# kind's default StorageClass (local-path) provisions vector-store's claim.
common=(--namespace "$NS" --wait --timeout 15m)
"$HELM" install "$RELEASE" charts/prismicx --create-namespace "${common[@]}"
"$HELM" upgrade "$RELEASE" charts/prismicx --reuse-values "${common[@]}"
"$KUBECTL" -n "$NS" wait --for=condition=Available databaseservice --all --timeout=10m

urls=()
for entry in "${SERVICES[@]}"; do
    read -r name port local <<<"$entry"
    "$KUBECTL" -n "$NS" port-forward "svc/$name" "$local:$port" >"$WORK/pf-$name.log" 2>&1 &
    FORWARDS+=($!)
    urls+=("$name=http://127.0.0.1:$local")
done
sleep 3

export PRISMICX_E2E_KUBECONFIG="$KUBECONFIG"
export PRISMICX_E2E_NAMESPACE="$NS"
export PRISMICX_E2E_URLS="$(IFS=,; echo "${urls[*]}")"
PRISMICX_E2E_PLATFORM_KEY="$("$KUBECTL" -n "$NS" get secret "$RELEASE-platform" -o jsonpath='{.data.api-key}' | base64 -d)"
export PRISMICX_E2E_PLATFORM_KEY
cargo test --locked -p prismicx-e2e
