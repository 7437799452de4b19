{
  # The optional MPI binding (src/dist/mpi.ts loads it): built by scripts/setup.sh only when OpenMPI's
  # compiler wrapper is found (Debian: libopenmpi-dev). Build by hand: npm run build:mpi
  "targets": [
    {
      "target_name": "lonas_mpi",
      "sources": ["mpi.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "OMPI_SKIP_MPICXX", "MPICH_SKIP_MPICXX"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-O2", "<!@(mpicc --showme:compile)"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "libraries": ["<!@(mpicc --showme:link)", "-ldl"]
    }
  ]
}
