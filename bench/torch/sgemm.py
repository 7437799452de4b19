#!/usr/bin/python3
"""PyTorch baseline of bench/sgemm.ts: GFLOP/s of torch.matmul(a, b, out=c), a (M, K), b (K, N), float32.

Run by the TS bench with OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (/ OMP_WAIT_POLICY)
set. Each sample repeats the product until it lasts at least --min-ms. Prints one JSON line:
{"shapes": [{"m":..,"n":..,"k":..,"gflops":[one value per sample]}, ...]}.
"""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--shapes", required=True, help="JSON list of [M, N, K]")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--min-ms", type=float, default=50.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = []
    for m, n, k in json.loads(a.shapes):
        A, B, C = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        flop = 2.0 * m * n * k
        for _ in range(3):  # warm-up
            torch.matmul(A, B, out=C)
        t0 = time.perf_counter()
        torch.matmul(A, B, out=C)
        reps = max(1, int(a.min_ms / 1e3 / max(time.perf_counter() - t0, 1e-9)))
        gflops = []
        for _ in range(a.samples):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.matmul(A, B, out=C)
            gflops.append(flop * reps / (time.perf_counter() - t0) / 1e9)
        out.append({"m": m, "n": n, "k": k, "gflops": gflops})
    print(json.dumps({"shapes": out, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
