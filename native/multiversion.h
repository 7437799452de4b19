// LONAS_MULTIVERSION: compile a function as AVX-512, AVX2 and baseline clones and pick one at load time by
// the CPU (GCC target_clones on x86-64 Linux; elsewhere a single baseline build).
#pragma once

#if defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define LONAS_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LONAS_MULTIVERSION
#endif
