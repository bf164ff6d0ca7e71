// y[M, N] = x[M, K] . w[N, K]^T in float32, for the sampler's decode step (M = a few rows, w = a weight
// stored [out, in]). XLA:CPU's matmul libraries stream such weights at 10-17 GB/s; this kernel reads each
// weight row once for 8 rows of x at a time, two weight rows at once with software prefetch, split over
// XLA's intra-op thread pool (the calling thread claims work too), and reaches the memory bandwidth.
//
// Built at first use by jaxrlvr/kernels/__init__.py (g++ -O3 -march=native); GCC vector extensions let the
// compiler pick AVX-512, AVX2 or SSE. Accumulation order: per output, 16 strided partial sums over k, then
// their sum, then the tail: results differ from XLA's dot by float32 rounding only.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

typedef float v16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
constexpr int64_t kPrefetch = 1024;  // floats ahead of the current weight position (measured: 1-2k best)
constexpr int64_t kRowsPerTask = 32;  // output columns claimed at a time

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline float hsum(v16 v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// Outputs n in [n0, n1) for MR rows of x (row stride K), written to y (row stride N).
template <int MR>
void Rows(const float* x, const float* w, float* y, int64_t K, int64_t N, int64_t n0, int64_t n1) {
  const int64_t kv = K - K % kLanes;
  int64_t n = n0;
  for (; n + 2 <= n1; n += 2) {
    const float* r0 = w + n * K;
    const float* r1 = r0 + K;
    v16 a[MR], b[MR];
    for (int m = 0; m < MR; ++m) a[m] = b[m] = v16{};
    for (int64_t k = 0; k < kv; k += kLanes) {
      __builtin_prefetch(r0 + k + kPrefetch, 0, 3);
      __builtin_prefetch(r1 + k + kPrefetch, 0, 3);
      const v16 w0 = load(r0 + k), w1 = load(r1 + k);
      for (int m = 0; m < MR; ++m) {
        const v16 xv = load(x + m * K + k);
        a[m] += w0 * xv;
        b[m] += w1 * xv;
      }
    }
    for (int m = 0; m < MR; ++m) {
      float s0 = hsum(a[m]), s1 = hsum(b[m]);
      for (int64_t k = kv; k < K; ++k) {
        s0 += r0[k] * x[m * K + k];
        s1 += r1[k] * x[m * K + k];
      }
      y[m * N + n] = s0;
      y[m * N + n + 1] = s1;
    }
  }
  for (; n < n1; ++n) {
    const float* r0 = w + n * K;
    v16 a[MR];
    for (int m = 0; m < MR; ++m) a[m] = v16{};
    for (int64_t k = 0; k < kv; k += kLanes) {
      const v16 w0 = load(r0 + k);
      for (int m = 0; m < MR; ++m) a[m] += w0 * load(x + m * K + k);
    }
    for (int m = 0; m < MR; ++m) {
      float s0 = hsum(a[m]);
      for (int64_t k = kv; k < K; ++k) s0 += r0[k] * x[m * K + k];
      y[m * N + n] = s0;
    }
  }
}

void Block(const float* x, const float* w, float* y, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1) {
  for (int64_t m0 = 0; m0 < M; m0 += 8) {
    const float* xm = x + m0 * K;
    float* ym = y + m0 * N;
    switch (std::min<int64_t>(8, M - m0)) {
      case 8: Rows<8>(xm, w, ym, K, N, n0, n1); break;
      case 7: Rows<7>(xm, w, ym, K, N, n0, n1); break;
      case 6: Rows<6>(xm, w, ym, K, N, n0, n1); break;
      case 5: Rows<5>(xm, w, ym, K, N, n0, n1); break;
      case 4: Rows<4>(xm, w, ym, K, N, n0, n1); break;
      case 3: Rows<3>(xm, w, ym, K, N, n0, n1); break;
      case 2: Rows<2>(xm, w, ym, K, N, n0, n1); break;
      default: Rows<1>(xm, w, ym, K, N, n0, n1); break;
    }
  }
}

// Work shared between the caller and the pool's tasks; a task may start after the caller returned (it
// then finds nothing left), so the state is owned jointly.
struct Work {
  const float* x;
  const float* w;
  float* y;
  int64_t M, K, N, tasks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  void Run() {
    for (int64_t t; (t = next.fetch_add(1)) < tasks;) {
      const int64_t n0 = t * kRowsPerTask;
      Block(x, w, y, M, K, N, n0, std::min(N, n0 + kRowsPerTask));
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

ffi::Error SmallMatmulImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                           ffi::ResultBuffer<ffi::F32> y) {
  auto xd = x.dimensions(), wd = w.dimensions();
  if (xd.size() != 2 || wd.size() != 2 || xd[1] != wd[1]) {
    return ffi::Error::InvalidArgument("jaxrlvr_small_matmul: expected x [M, K] and w [N, K]");
  }
  const int64_t M = xd[0], K = xd[1], N = wd[0];
  auto work = std::make_shared<Work>();
  work->x = x.typed_data();
  work->w = w.typed_data();
  work->y = y->typed_data();
  work->M = M;
  work->K = K;
  work->N = N;
  work->tasks = (N + kRowsPerTask - 1) / kRowsPerTask;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), work->tasks - 1);
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule([work] { work->Run(); });
  work->Run();
  while (work->done.load(std::memory_order_acquire) < work->tasks) std::this_thread::yield();
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrlvrSmallMatmulF32, SmallMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
