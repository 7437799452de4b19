// N-API entry points of the lonas native kernels (see src/kernels/api.ts for the contract).
// All take Float32Array / Int32Array arguments and validate them (see common.h).
#pragma once

#include <napi.h>

namespace lonas {

// gemm.cc — OpenBLAS sgemm
void Gemm(const Napi::CallbackInfo& info);
void GemmBatched(const Napi::CallbackInfo& info);

// attention.cc — fused decode attention (one query per row against a KV cache)
void AttentionDecode(const Napi::CallbackInfo& info);

// bf16.cc — products with a bfloat16 weight (small-M kernel, or widened tiles + sgemm)
void GemmBf16(const Napi::CallbackInfo& info);
// bf16-gemm.cc — the bf16 GEMM's path (amx | avx512bf16 | generic), read or forced
Napi::Value Bf16GemmPath(const Napi::CallbackInfo& info);

// fused.cc — row-wise fused loops
void Softmax(const Napi::CallbackInfo& info);
void SoftmaxBackward(const Napi::CallbackInfo& info);
Napi::Value CrossEntropy(const Napi::CallbackInfo& info);
void CrossEntropyBackward(const Napi::CallbackInfo& info);
void RmsNorm(const Napi::CallbackInfo& info);
void RmsNormBackward(const Napi::CallbackInfo& info);

// elementwise.cc — activations, rotary embedding, embedding lookup, AdamW
void Silu(const Napi::CallbackInfo& info);
void SiluBackward(const Napi::CallbackInfo& info);
void Swiglu(const Napi::CallbackInfo& info);
void SwigluBackward(const Napi::CallbackInfo& info);
void Rope(const Napi::CallbackInfo& info);
void Embedding(const Napi::CallbackInfo& info);
void EmbeddingBackward(const Napi::CallbackInfo& info);
void AdamW(const Napi::CallbackInfo& info);

// dropout.cc — inverted dropout with per-row xoshiro128** streams, its backward; the scaled sum a + b·s
void Dropout(const Napi::CallbackInfo& info);
void DropoutBackward(const Napi::CallbackInfo& info);
void AddScaled(const Napi::CallbackInfo& info);

// linalg.cc — GPTQ's linear algebra: the inverse-Hessian factor (LAPACK, float64), the Hessian (ssyrk)
void CholeskyInverseUpper(const Napi::CallbackInfo& info);
void GramUpper(const Napi::CallbackInfo& info);
void HessianFromGram(const Napi::CallbackInfo& info);
void GptqDequantize(const Napi::CallbackInfo& info);

// gptq.cc — GPTQ's column loop (float64, the twin's operations)
void GptqColumns(const Napi::CallbackInfo& info);

}  // namespace lonas
