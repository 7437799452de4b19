{
  # Build: npm run build:native  (= node-gyp rebuild --directory native). Needs libopenblas-dev.
  "targets": [
    {
      "target_name": "lonas",
      "sources": ["lonas.cc", "gemm.cc", "fused.cc", "elementwise.cc", "dropout.cc", "int4.cc", "int4-gemv.cc", "int4-gemv-avx2.cc", "int4-q8.cc", "compressed-runtime.cc", "pool.cc", "sparse.cc", "vexp.cc", "small-gemm.cc", "bf16.cc", "bf16-dot.cc", "attention.cc", "linalg.cc", "gptq.cc", "int4-q8-gemm.cc", "bf16-gemm.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      # C++ exceptions on: argument errors are thrown as Napi::TypeError/RangeError.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      # No -march=native (portable binary) and no -ffast-math (results stay within ~1 ulp of
      # IEEE float). -fno-math-errno lets sqrtf inline/vectorise; -ffp-contract=off keeps a·b + c
      # rounded twice like PyTorch's CPU kernels, whatever the target.
      "cflags": ["-O3", "-fno-math-errno", "-ffp-contract=off"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "libraries": ["-lopenblas"]
    }
  ]
}
