// Margin of probability rows, an XLA:CPU custom call (`jaxal._native`).
//
// margin = largest - second largest of each row of the last axis (a repeated
// maximum gives 0; a row holding a NaN gives NaN), the values of
// `jaxal.uncertainty`'s XLA formulation exactly: only max/min and one
// subtraction, no rounding choice. Rows are split in chunks over XLA's intra-op
// thread pool (the calling thread works too), so the call reads the array near
// the memory bandwidth of the cores, where XLA:CPU's top-two reduction ran at
// 1.5-3 GB/s (bench/results/acquisition_cpu_xeon_avx512_amx.txt).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// One native vector of floats: 16 lanes with AVX-512, 8 with AVX, else 4.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float VF __attribute__((vector_size(4 * kLanes)));
typedef int VI __attribute__((vector_size(4 * kLanes)));

inline VF Splat(float x) {
  VF v;
  for (int l = 0; l < kLanes; ++l) v[l] = x;
  return v;
}

// (m1, m2) <- top two of {m1, m2, v}, lane by lane (m1 >= m2).
inline void Top2(VF v, VF& m1, VF& m2) {
  VF lo = m1 < v ? m1 : v;
  m1 = m1 < v ? v : m1;
  m2 = m2 < lo ? lo : m2;
}

// Margin of one row: largest minus second largest (a repeated maximum gives 0),
// NaN if the row holds a NaN (as XLA's max/min reduction gives). Two chains of
// kLanes lanes each keep the top two of their columns (two chains hide the
// compare-and-select latency); chains, then lanes, are merged at the end.
inline float RowMargin(const float* p, int64_t c) {
  VF a1 = Splat(-INFINITY), a2 = a1, b1 = a1, b2 = a1;
  VI bad = {};
  int64_t j = 0;
  for (; j + 2 * kLanes <= c; j += 2 * kLanes) {
    VF v0, v1;
    std::memcpy(&v0, p + j, sizeof(v0));
    std::memcpy(&v1, p + j + kLanes, sizeof(v1));
    bad |= (v0 != v0) | (v1 != v1);
    Top2(v0, a1, a2);
    Top2(v1, b1, b2);
  }
  Top2(b1, a1, a2);  // merge the chains: b2 <= b1, so only b1 can enter ...
  a2 = a2 < b2 ? b2 : a2;  // ... or b2 as the second
  // Lanes by halves, branch-free: the top two of two top-two pairs (x1, x2),
  // (y1, y2) are max(x1, y1) and max(min(x1, y1), x2, y2).
  float h1[kLanes], h2[kLanes];
  std::memcpy(h1, &a1, sizeof(h1));
  std::memcpy(h2, &a2, sizeof(h2));
  for (int w = kLanes / 2; w >= 1; w /= 2) {
    for (int l = 0; l < w; ++l) {
      float lo = std::min(h1[l], h1[l + w]);
      h1[l] = std::max(h1[l], h1[l + w]);
      h2[l] = std::max(std::max(h2[l], h2[l + w]), lo);
    }
  }
  float t1 = h1[0], t2 = h2[0];
  int nan = 0;
  for (int l = 0; l < kLanes; ++l) nan |= bad[l];
  for (; j < c; ++j) {  // the last columns
    float v = p[j];
    nan |= v != v;
    float lo = std::min(t1, v);
    t1 = std::max(t1, v);
    t2 = std::max(t2, lo);
  }
  return nan ? NAN : t1 - t2;
}

// Chunks of rows handed out by an atomic counter: a pool thread that starts
// late finds none left and returns; the caller waits only for claimed chunks.
struct Shared {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable cv;
};

ffi::Error MarginImpl(ffi::ThreadPool pool, ffi::AnyBuffer probs,
                      ffi::Result<ffi::AnyBuffer> out) {
  if (probs.element_type() != ffi::DataType::F32) {
    return ffi::Error::InvalidArgument("jaxal margin: probs must be float32");
  }
  auto dims = probs.dimensions();
  if (dims.size() < 1) {
    return ffi::Error::InvalidArgument("jaxal margin: probs must be [..., C]");
  }
  const int64_t c = dims.back();
  int64_t n = 1;
  for (size_t i = 0; i + 1 < dims.size(); ++i) n *= dims[i];
  if (c < 1) return ffi::Error::InvalidArgument("jaxal margin: no classes");
  const float* p = reinterpret_cast<const float*>(probs.untyped_data());
  float* o = reinterpret_cast<float*>(out->untyped_data());
  constexpr int64_t kRows = 1024;
  const int64_t chunks = (n + kRows - 1) / kRows;
  auto run = [p, o, n, c](int64_t k) {
    const int64_t end = std::min(n, (k + 1) * kRows);
    for (int64_t i = k * kRows; i < end; ++i) o[i] = RowMargin(p + i * c, c);
  };
  // Small arrays: the caller alone (scheduling costs more than it saves).
  int64_t helpers = n * c < (int64_t{1} << 18) ? 0 :
      std::min<int64_t>(pool.num_threads(), chunks - 1);
  auto shared = std::make_shared<Shared>();
  auto work = [shared, run, chunks]() {
    int64_t k;
    while ((k = shared->next.fetch_add(1)) < chunks) {
      run(k);
      if (shared->done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> guard(shared->mu);
        shared->cv.notify_all();
      }
    }
  };
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule(decltype(work)(work));
  work();
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->done.load() == chunks; });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxalMarginF32, MarginImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
