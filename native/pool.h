// The one worker pool every native kernel that splits its work uses (matrix-vector products, element-wise,
// RMSNorm, softmax, cross-entropy, attention, AdamW), and its thread setting.
//
// Thread count: poolThreads(), default LONAS_THREADS from the environment at load time, else the machine's
// cores (std::thread::hardware_concurrency); setThreads(n) sets it together with OpenBLAS's threads,
// compressedThreads(n) sets it alone. No fixed cap: any n in [1, kPoolMaxThreads].
//
// Determinism: the kernels split over independent items (rows, output columns, whole 1024-element runs of an
// element-wise loop) and compute each item exactly as a serial loop would, so results do not depend on the
// thread count (tests compare 1, 2 and 3 threads bit for bit). Reductions across items (cross-entropy's
// total, RMSNorm's weight gradient) keep their serial order (summed after the split, or split along the
// other axis).
#pragma once

#include <cstdint>
#include <functional>

namespace lonas {

constexpr int kPoolMaxThreads = 1024;

// Pieces of work per thread: dynamic claiming lets a thread that starts late (another process on its
// core) take fewer.
constexpr int kChunksPerThread = 4;

int poolThreads();
void setPoolThreads(int n);  // 1 ≤ n ≤ kPoolMaxThreads

// Runs body(chunk) for chunk = 0..chunks−1 on the calling thread and up to threads − 1 persistent
// workers (spawned on first use; they spin briefly after a job, then park on a condition variable). Pieces
// are claimed dynamically, so a worker that is not scheduled in time only means the caller does more of
// them. One job at a time: a call made while the pool is busy (a nested or concurrent call) runs serially.
void parallelChunks(int chunks, int threads, const std::function<void(int)>& body);

// Splits [0, n) into pieces of whole `quantum`-sized runs (the last one may be short) and runs
// body(begin, end) for each on the pool, with at most poolThreads() threads and no more pieces than
// n / minPerPiece: small jobs stay on the calling thread, where the hand-off would cost more than it saves.
//
// kMinPiece: the least work (in floats touched) worth a piece of its own, ~10 µs at memory speed.
constexpr int64_t kMinPiece = 16384;
void parallelFor(int64_t n, int64_t minPerPiece, int64_t quantum, const std::function<void(int64_t, int64_t)>& body);

// Test of the claim protocol (test/kernels/pool.test.ts, through the addon's poolSelfTest): runs `jobs` jobs of
// alternating small and large chunk counts on at least 2 threads with the race windows widened by delayUs
// (see pool.cc) and returns how many pieces did not run exactly once. A protocol bug may also hang it: run it in a
// child process with a timeout.
int64_t poolSelfTest(int jobs, int delayUs);

}  // namespace lonas
