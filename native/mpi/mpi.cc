// lonas_mpi: the few MPI calls lonas needs (src/dist/mpi.ts), on MPI_COMM_WORLD, from Node's main thread.
//
//   init() → { rank, size }      MPI_Init_thread (FUNNELED: only the main thread calls MPI)
//   allreduceSum(Float32Array | Float64Array)   in-place sum over all ranks
//   bcast(TypedArray, root)               in-place broadcast of the array's bytes from `root`
//   libraryVersion()                      MPI_Get_library_version (allowed before init)
//   barrier(), abort(code), finalize()
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>

namespace {

bool initialized = false;

void requireInit(const Napi::Env& env) {
  if (!initialized) throw Napi::Error::New(env, "lonas_mpi: init() was not called");
}

void check(const Napi::Env& env, int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw Napi::Error::New(env, std::string(what) + " failed: " + std::string(msg, len));
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!initialized) {
    // Open MPI loads its components with dlopen and they need libmpi's symbols global; Node loads addons
    // (and so libmpi) with RTLD_LOCAL. Re-open libmpi globally first, as mpi4py does.
    Dl_info dl;
    if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &dl) && dl.dli_fname) dlopen(dl.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    int provided = 0;
    check(env, MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    initialized = true;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", rank);
  out.Set("size", size);
  return out;
}

Napi::Value LibraryVersion(const Napi::CallbackInfo& info) {
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  return Napi::String::New(info.Env(), std::string(version, len));
}

Napi::Value AllreduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env);
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "allreduceSum(Float32Array | Float64Array)");
  Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
  MPI_Datatype type;
  void* data;
  if (arr.TypedArrayType() == napi_float32_array) { type = MPI_FLOAT; data = arr.As<Napi::Float32Array>().Data(); }
  else if (arr.TypedArrayType() == napi_float64_array) { type = MPI_DOUBLE; data = arr.As<Napi::Float64Array>().Data(); }
  else throw Napi::TypeError::New(env, "allreduceSum: needs a Float32Array or Float64Array");
  if (arr.ElementLength() > static_cast<size_t>(INT32_MAX)) throw Napi::RangeError::New(env, "allreduceSum: more than 2^31 elements");
  check(env, MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(arr.ElementLength()), type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  return env.Undefined();
}

Napi::Value Bcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  requireInit(env);
  if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "bcast(TypedArray, root)");
  Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
  Napi::ArrayBuffer buf = arr.ArrayBuffer();
  char* data = static_cast<char*>(buf.Data()) + arr.ByteOffset();
  size_t bytes = arr.ByteLength();
  if (bytes > static_cast<size_t>(INT32_MAX)) throw Napi::RangeError::New(env, "bcast: more than 2^31 bytes");
  check(env, MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, info[1].As<Napi::Number>().Int32Value(), MPI_COMM_WORLD), "MPI_Bcast");
  return env.Undefined();
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  requireInit(info.Env());
  check(info.Env(), MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  return info.Env().Undefined();
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  if (initialized) MPI_Abort(MPI_COMM_WORLD, code);
  return info.Env().Undefined();
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  if (initialized) {
    initialized = false;
    MPI_Finalize();
  }
  return info.Env().Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("allreduceSum", Napi::Function::New(env, AllreduceSum));
  exports.Set("bcast", Napi::Function::New(env, Bcast));
  exports.Set("libraryVersion", Napi::Function::New(env, LibraryVersion));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  return exports;
}

}  // namespace

NODE_API_MODULE(lonas_mpi, Module)
