# PrismicX developer entry points. `make` (or `make help`) lists the targets.

export CARGO_TARGET_DIR ?= $(HOME)/.cache/prismicx/target
export PRISMICX_TOOLS_DIR ?= $(HOME)/.cache/prismicx/tools

CARGO ?= cargo
RUN_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help deps bench-deps test run e2e-kind bench generate fmt lint images-check clean-cache

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Install Debian packages (servers; plantuml for the diagrams), SecantusDB venv, helm and kubectl (idempotent)
	@scripts/install-deps.sh

bench-deps: ## What only the benchmarks need, on top of deps: Debian dataset-fashion-mnist, a venv with faiss-cpu, hnswlib, numpy, matplotlib (idempotent)
	@scripts/install-deps.sh --bench

test: deps ## fmt check, clippy -D warnings, then the whole workspace test suite
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked
	$(MAKE) --no-print-directory images-check

run: deps ## Run the local platform (prismicx-local); pass arguments with RUN_ARGS="..."
	$(CARGO) run --locked -p prismicx-local -- up $(RUN_ARGS)

e2e-kind: deps ## The end-to-end suite against a kind cluster (needs docker and kind): build and load the images, helm install, run e2e/
	scripts/e2e-kind.sh

bench: bench-deps ## Run the benchmarks: user-data GET /v1/users/{id} vs pgbench, a quiet tenant's latency beside a noisy one, tenant provisioning vs a plain script, vector search (vector-store engine vs faiss and hnswlib on Fashion-MNIST, filtered, ingest, many tenants)
	$(CARGO) bench --locked -p prismicx-user-data --bench get_user
	$(CARGO) bench --locked -p prismicx-user-data --bench noisy_neighbour
	$(CARGO) bench --locked -p prismicx-operator --bench provision
	$(CARGO) bench --locked -p prismicx-vector-store --bench ann

generate: ## Regenerate every generated file: CRDs and the chart's copies, API reference, data layout, schema reference, diagram sources, and their PNGs when plantuml is installed (make deps); the tests fail when a generated text drifts
	$(CARGO) run --locked -q -p prismicx-operator-api --bin crdgen -- crds
	$(CARGO) run --locked -q -p prismicx-operator-api --bin crdgen -- charts/prismicx/files/crds
	$(CARGO) run --locked -q -p prismicx-docgen --bin docgen -- docs
	@if command -v plantuml >/dev/null 2>&1; then docs/diagrams/generate-diagrams.sh; \
	else echo "plantuml not installed (make deps): docs/diagrams/*.png not re-rendered"; fi

IMAGE_BINARIES := prismicx-operator tenant-mgmt-service user-data-service task-repo-service \
	category-repository-service management-system-repo vector-store-service

images-check: ## Build the release binaries the images copy (images/Dockerfile) and check they run
	$(CARGO) build --release --locked $(addprefix --bin ,$(IMAGE_BINARIES))
	@for b in $(IMAGE_BINARIES); do "$(CARGO_TARGET_DIR)/release/$$b" --version || exit 1; done

fmt: ## Format all crates in place
	$(CARGO) fmt --all

lint: ## fmt check + clippy -D warnings (no tests)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

clean-cache: ## Remove the shared cargo target dir ($(CARGO_TARGET_DIR))
	rm -rf -- "$(CARGO_TARGET_DIR)"
