#!/usr/bin/env python3
"""The peers of the vector-store ANN benchmark (benches/ann.rs): data preparation, exact ground
truth, and faiss / hnswlib runs with the engine's index parameters.

Data flow: `prepare` reads Fashion-MNIST from the Debian package `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist, IDX files: 60,000 train images as the base, 10,000 test
images as the queries, 784 dimensions, pixel values 0-255 as float32, as in the public ANN
benchmarks' fashion-mnist-784-euclidean), writes the first N base and Q query vectors as raw
little-endian float32 files and the exact k = 10 neighbours (faiss IndexFlatL2) as int32, all in
a cache directory, and prints one JSON object naming the files. A second `prepare` with the same
N and Q reuses the files. `run` loads those files, builds one library's HNSW index (M = 16,
efConstruction = 200, one thread) and prints one JSON object per ef:
{library, version, ef, qps, cpu_qps, recall, build_s, build_cpu_s, memory_bytes}. Queries go as one batch
per ef (one thread); `qps` is queries per second of wall time, `cpu_qps` per second of the
process's CPU time (what the machine's other load does not distort), each the best of
`--repeats` passes.

Run by `cargo bench -p prismicx-vector-store --bench ann`, with the venv that
`scripts/install-deps.sh --bench` makes (faiss-cpu, hnswlib, numpy, matplotlib).
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np

K = 10
M = 16
EF_CONSTRUCTION = 200


def read_idx_images(path):
    """The images of an IDX3 file (gzip) as an (n, rows*cols) float32 array."""
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 2051:
            sys.exit(f"{path}: not an IDX3 image file (magic {magic})")
        pixels = np.frombuffer(f.read(n * rows * cols), dtype=np.uint8)
    return pixels.reshape(n, rows * cols).astype(np.float32)


def cache_paths(cache, n_base, n_queries):
    stem = os.path.join(cache, f"fashion-mnist-{n_base}-{n_queries}")
    return {
        "base_path": stem + ".base.f32",
        "queries_path": stem + ".queries.f32",
        "gt_path": stem + f".gt{K}.i32",
    }


def write_atomic(path, array):
    part = path + ".part"
    array.tofile(part)
    os.replace(part, path)


def prepare(args):
    paths = cache_paths(args.cache, args.base, args.queries)
    dim = 784
    if not all(os.path.exists(p) for p in paths.values()):
        train = os.path.join(args.data, "train-images-idx3-ubyte.gz")
        test = os.path.join(args.data, "t10k-images-idx3-ubyte.gz")
        for p in (train, test):
            if not os.path.exists(p):
                sys.exit(
                    f"{p} not found: install the Debian package dataset-fashion-mnist "
                    "(make bench-deps, or apt-get install dataset-fashion-mnist)"
                )
        base = read_idx_images(train)[: args.base]
        queries = read_idx_images(test)[: args.queries]
        dim = base.shape[1]
        import faiss

        exact = faiss.IndexFlatL2(dim)
        exact.add(base)
        _, gt = exact.search(queries, K)
        os.makedirs(args.cache, exist_ok=True)
        write_atomic(paths["base_path"], np.ascontiguousarray(base, dtype="<f4"))
        write_atomic(paths["queries_path"], np.ascontiguousarray(queries, dtype="<f4"))
        write_atomic(paths["gt_path"], np.ascontiguousarray(gt, dtype="<i4"))
    print(json.dumps({"dim": dim, "base": args.base, "queries": args.queries, "k": K, **paths}))


def resident_bytes():
    """The process's resident set size (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def recall_at_k(found, gt):
    hits = sum(len(set(row[:K]) & set(truth[:K])) for row, truth in zip(found, gt))
    return hits / (len(gt) * K)


def load(args):
    paths = cache_paths(args.cache, args.base, args.queries)
    base = np.fromfile(paths["base_path"], dtype="<f4").reshape(args.base, -1)
    queries = np.fromfile(paths["queries_path"], dtype="<f4").reshape(args.queries, -1)
    gt = np.fromfile(paths["gt_path"], dtype="<i4").reshape(args.queries, K)
    return base, queries, gt


class Faiss:
    name = "faiss"

    def __init__(self):
        import faiss

        self.faiss = faiss
        self.version = faiss.__version__
        faiss.omp_set_num_threads(1)

    def build(self, base):
        self.index = self.faiss.IndexHNSWFlat(base.shape[1], M)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.add(base)

    def search(self, queries, ef):
        self.index.hnsw.efSearch = ef
        _, labels = self.index.search(queries, K)
        return labels


class Hnswlib:
    name = "hnswlib"

    def __init__(self):
        import hnswlib
        from importlib.metadata import version

        self.hnswlib = hnswlib
        self.version = version("hnswlib")

    def build(self, base):
        self.index = self.hnswlib.Index(space="l2", dim=base.shape[1])
        self.index.init_index(max_elements=base.shape[0], ef_construction=EF_CONSTRUCTION, M=M)
        self.index.set_num_threads(1)
        self.index.add_items(base, np.arange(base.shape[0]), num_threads=1)

    def search(self, queries, ef):
        self.index.set_ef(ef)
        labels, _ = self.index.knn_query(queries, k=K, num_threads=1)
        return labels


def run(args):
    base, queries, gt = load(args)
    lib = {"faiss": Faiss, "hnswlib": Hnswlib}[args.library]()
    rss_before = resident_bytes()
    start, start_cpu = time.perf_counter(), time.process_time()
    lib.build(base)
    build_s = time.perf_counter() - start
    build_cpu_s = time.process_time() - start_cpu
    memory = resident_bytes() - rss_before
    for ef in (int(e) for e in args.efs.split(",")):
        best = best_cpu = float("inf")
        labels = None
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            labels = lib.search(queries, ef)
            best_cpu = min(best_cpu, time.process_time() - start_cpu)
            best = min(best, time.perf_counter() - start)
        print(
            json.dumps(
                {
                    "library": lib.name,
                    "version": lib.version,
                    "ef": ef,
                    "qps": len(queries) / best,
                    "cpu_qps": len(queries) / best_cpu,
                    "recall": recall_at_k(labels.tolist(), gt.tolist()),
                    "build_s": build_s,
                    "build_cpu_s": build_cpu_s,
                    "memory_bytes": memory,
                }
            ),
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "run"):
        p = sub.add_parser(name)
        p.add_argument("--cache", required=True)
        p.add_argument("--base", type=int, required=True)
        p.add_argument("--queries", type=int, required=True)
        if name == "prepare":
            p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
        else:
            p.add_argument("--library", choices=["faiss", "hnswlib"], required=True)
            p.add_argument("--efs", required=True)
            p.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    {"prepare": prepare, "run": run}[args.command](args)


if __name__ == "__main__":
    main()
