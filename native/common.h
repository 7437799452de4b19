// Shared helpers for the lonas native kernels: argument validation and small numeric utilities.
//
// Every exported kernel starts with `Args args(info, "kernelName", expectedCount)` and then reads its
// arguments through the typed accessors below. Any problem (wrong count, wrong type, negative or
// fractional size, array too short for offset + extent, index out of range) throws a JS
// TypeError/RangeError that names the kernel and the argument, instead of crashing the process.
// C++ exceptions are enabled (NAPI_CPP_EXCEPTIONS); node-addon-api turns a thrown Napi::Error into a
// JS exception when the callback returns.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>

namespace lonas {

// A Float32Array argument: data pointer (already adjusted for the view's byteOffset) and length.
struct F32 {
  float* data;
  int64_t length;
};

// An Int32Array argument.
struct I32 {
  int32_t* data;
  int64_t length;
};

// A Float64Array argument (the float64 linear algebra of linalg.cc).
struct F64 {
  double* data;
  int64_t length;
};

// A Uint8Array argument (GPTQ codes and keep masks, dropout's keep mask).
struct U8 {
  uint8_t* data;
  int64_t length;
};

// A Uint16Array argument (bfloat16 bit patterns).
struct U16 {
  uint16_t* data;
  int64_t length;
};

// A Uint32Array argument (random generator states).
struct U32 {
  uint32_t* data;
  int64_t length;
};

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* kernel, size_t count)
      : info_(info), env_(info.Env()), kernel_(kernel) {
    if (info.Length() != count) {
      throwType("expected " + std::to_string(count) + " arguments, got " + std::to_string(info.Length()));
    }
  }

  const char* kernel() const { return kernel_; }

  // A Float32Array. Float64Array gets a dedicated message: float64 is only supported by the reference.
  F32 f32(size_t i, const char* name) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (typedArray(i, &type, &length, &data)) {
      if (type == napi_float32_array) return F32{static_cast<float*>(data), static_cast<int64_t>(length)};
      if (type == napi_float64_array) {
        throwArg(i, name, "is a Float64Array: the native kernels are float32-only; float64 runs on the reference kernels", true);
      }
    }
    throwArg(i, name, "must be a Float32Array, got " + describe(i), true);
  }

  // A Float32Array, or null meaning "not wanted" → {nullptr, 0}.
  F32 f32OrNull(size_t i, const char* name) const {
    if (isNull(i)) return F32{nullptr, 0};
    return f32(i, name);
  }

  I32 i32(size_t i, const char* name) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (typedArray(i, &type, &length, &data) && type == napi_int32_array) {
      return I32{static_cast<int32_t*>(data), static_cast<int64_t>(length)};
    }
    throwArg(i, name, "must be an Int32Array, got " + describe(i), true);
  }

  // An Int32Array, or null meaning "none" → {nullptr, 0}.
  I32 i32OrNull(size_t i, const char* name) const {
    if (isNull(i)) return I32{nullptr, 0};
    return i32(i, name);
  }

  F64 f64(size_t i, const char* name) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (typedArray(i, &type, &length, &data) && type == napi_float64_array) {
      return F64{static_cast<double*>(data), static_cast<int64_t>(length)};
    }
    throwArg(i, name, "must be a Float64Array, got " + describe(i), true);
  }

  U16 u16(size_t i, const char* name) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (typedArray(i, &type, &length, &data) && type == napi_uint16_array) {
      return U16{static_cast<uint16_t*>(data), static_cast<int64_t>(length)};
    }
    throwArg(i, name, "must be a Uint16Array (bfloat16 bits), got " + describe(i), true);
  }

  U8 u8(size_t i, const char* name) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (typedArray(i, &type, &length, &data) && type == napi_uint8_array) {
      return U8{static_cast<uint8_t*>(data), static_cast<int64_t>(length)};
    }
    throwArg(i, name, "must be a Uint8Array, got " + describe(i), true);
  }

  U32 u32(size_t i, const char* name) const {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (typedArray(i, &type, &length, &data) && type == napi_uint32_array) {
      return U32{static_cast<uint32_t*>(data), static_cast<int64_t>(length)};
    }
    throwArg(i, name, "must be a Uint32Array, got " + describe(i), true);
  }

  // A Uint8Array, or null meaning "not wanted" → {nullptr, 0}.
  U8 u8OrNull(size_t i, const char* name) const {
    if (isNull(i)) return U8{nullptr, 0};
    return u8(i, name);
  }

  double number(size_t i, const char* name) const {
    double value;
    if (napi_get_value_double(env_, info_[i], &value) != napi_ok) {
      throwArg(i, name, "must be a number, got " + describe(i), true);
    }
    return value;
  }

  bool flag(size_t i, const char* name) const {
    bool value;
    if (napi_get_value_bool(env_, info_[i], &value) != napi_ok) {
      throwArg(i, name, "must be a boolean, got " + describe(i), true);
    }
    return value;
  }

  // Any integer in (−2^53, 2^53) (e.g. ignoreIndex, causalShift).
  int64_t integer(size_t i, const char* name) const {
    double value = number(i, name);
    if (!(std::fabs(value) <= 9007199254740991.0) || value != std::floor(value)) {
      throwArg(i, name, "must be an integer, got " + num(value), false);
    }
    return static_cast<int64_t>(value);
  }

  // A size, offset, stride or leading dimension: integer in [0, 2^53).
  int64_t index(size_t i, const char* name) const {
    int64_t value = integer(i, name);
    if (value < 0) throwArg(i, name, "must be ≥ 0, got " + std::to_string(value), false);
    return value;
  }

  // A BLAS dimension (OpenBLAS LP64 uses 32-bit int): integer in [0, 2^31).
  int blasInt(size_t i, const char* name) const {
    int64_t value = index(i, name);
    if (value > INT32_MAX) throwArg(i, name, "exceeds the 32-bit BLAS limit: " + std::to_string(value), false);
    return static_cast<int>(value);
  }

  // An optional trailing compute-mode string (absent or undefined: the first mode); returns its index in
  // `modes`. Anything else is a TypeError / RangeError naming the valid modes.
  int mode(size_t i, const char* name, std::initializer_list<const char*> modes) const {
    if (info_.Length() <= i || info_[i].IsUndefined()) return 0;
    if (!info_[i].IsString()) throwType("argument " + std::to_string(i) + " '" + name + "' must be a string");
    const std::string value = info_[i].As<Napi::String>().Utf8Value();
    std::string valid;
    int index = 0;
    for (const char* m : modes) {
      if (value == m) return index;
      valid += std::string(index++ ? " or '" : "'") + m + "'";
    }
    throwRange(std::string(name) + " = '" + value + "' must be " + valid);
  }

  // RangeError unless the array `name` has at least `needed` elements.
  void need(const char* name, int64_t length, int64_t needed) const {
    if (length < needed) {
      throwRange(std::string("'") + name + "' has " + std::to_string(length) + " elements but " +
                 std::to_string(needed) + " are needed (offset + extent)");
    }
  }

  // Overflow-checked arithmetic for extents (operands are already < 2^53).
  int64_t mul(int64_t a, int64_t b) const {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) throwRange("size overflow");
    return r;
  }
  int64_t add(int64_t a, int64_t b) const {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) throwRange("size overflow");
    return r;
  }

  [[noreturn]] void throwRange(const std::string& message) const {
    throw Napi::RangeError::New(env_, std::string(kernel_) + ": " + message);
  }
  [[noreturn]] void throwType(const std::string& message) const {
    throw Napi::TypeError::New(env_, std::string(kernel_) + ": " + message);
  }

 private:
  bool typedArray(size_t i, napi_typedarray_type* type, size_t* length, void** data) const {
    bool is = false;
    if (napi_is_typedarray(env_, info_[i], &is) != napi_ok || !is) return false;
    return napi_get_typedarray_info(env_, info_[i], type, length, data, nullptr, nullptr) == napi_ok;
  }

  bool isNull(size_t i) const {
    napi_valuetype t;
    return napi_typeof(env_, info_[i], &t) == napi_ok && t == napi_null;
  }

  // Short human description of argument i for error messages ("Float64Array", "number", ...).
  std::string describe(size_t i) const {
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (typedArray(i, &type, &length, &data)) {
      switch (type) {
        case napi_int8_array: return "Int8Array";
        case napi_uint8_array: return "Uint8Array";
        case napi_uint8_clamped_array: return "Uint8ClampedArray";
        case napi_int16_array: return "Int16Array";
        case napi_uint16_array: return "Uint16Array";
        case napi_int32_array: return "Int32Array";
        case napi_uint32_array: return "Uint32Array";
        case napi_float32_array: return "Float32Array";
        case napi_float64_array: return "Float64Array";
        default: return "a typed array";
      }
    }
    napi_valuetype t;
    if (napi_typeof(env_, info_[i], &t) != napi_ok) return "unknown";
    switch (t) {
      case napi_undefined: return "undefined";
      case napi_null: return "null";
      case napi_boolean: return "boolean";
      case napi_number: return "number";
      case napi_string: return "string";
      case napi_symbol: return "symbol";
      case napi_object: return "object";
      case napi_function: return "function";
      case napi_bigint: return "bigint";
      default: return "unknown";
    }
  }

  static std::string num(double v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
  }

  [[noreturn]] void throwArg(size_t i, const char* name, const std::string& what, bool typeError) const {
    std::string message = "argument " + std::to_string(i) + " '" + name + "' " + what;
    if (typeError) throwType(message);
    throwRange(message);
  }

  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  const char* kernel_;
};

// Σ x[i] accumulated in double with four independent partial sums (keeps the adds pipelined).
inline double sumF64(const float* x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < n; i++) s0 += x[i];
  return (s0 + s1) + (s2 + s3);
}

// Σ a[i]·b[i] with products and sums in double (products of two floats are exact in double).
inline double dotF64(const float* a, const float* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += static_cast<double>(a[i]) * b[i];
    s1 += static_cast<double>(a[i + 1]) * b[i + 1];
    s2 += static_cast<double>(a[i + 2]) * b[i + 2];
    s3 += static_cast<double>(a[i + 3]) * b[i + 3];
  }
  for (; i < n; i++) s0 += static_cast<double>(a[i]) * b[i];
  return (s0 + s1) + (s2 + s3);
}

// max_j x[j] over n ≥ 1 elements (NaNs are skipped here but still propagate through the exp/sum).
inline float maxF32(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

}  // namespace lonas
