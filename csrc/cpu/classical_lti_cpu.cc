// LTI kernels. simulate: the recurrence, one batch item per task, state in the input dtype
// (float32 accumulation for float32, as the other ops). kernel: impulse response in float64,
// one input column per task. convolve: causal linear convolution through real FFTs of a
// power-of-two length >= L + Lk − 1 (so the circular wrap never reaches the kept outputs);
// kernel spectra are computed once and shared by every batch item.
#include <algorithm>
#include <complex>
#include "core/thread_pool.h"
#include "cpu/classical_cpu.h"
#include "cpu/classical_fft.h"
#include "cpu/classical_linalg.h"
#include "ops/classical_lti.h"

namespace ss::classical {
namespace {

template <typename T>
void simulate_t(const SimulateParams& p) {
  const int64_t n = p.n, m = p.m, q = p.p, L = p.L;
  const T* A = static_cast<const T*>(p.A);
  const T* B = static_cast<const T*>(p.B);
  const T* C = static_cast<const T*>(p.C);
  const T* D = static_cast<const T*>(p.D);
  const T* x0 = static_cast<const T*>(p.x0);
  parallel_for(p.batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> x(n), xn(n), ut(m);
    for (int64_t b = b0; b < b1; ++b) {
      const T* u = static_cast<const T*>(p.u) + b * m * L;
      T* y = static_cast<T*>(p.y) + b * q * L;
      for (int64_t i = 0; i < n; ++i) x[i] = x0 ? x0[b * n + i] : T(0);
      for (int64_t t = 0; t < L; ++t) {
        for (int64_t k = 0; k < m; ++k) ut[k] = u[k * L + t];
        for (int64_t i = 0; i < n; ++i) {
          T s = dot(A + i * n, x.data(), n);
          for (int64_t k = 0; k < m; ++k) s += B[i * m + k] * ut[k];
          xn[i] = s;
        }
        x.swap(xn);
        for (int64_t o = 0; o < q; ++o) {
          T s = dot(C + o * n, x.data(), n);
          if (D)
            for (int64_t k = 0; k < m; ++k) s += D[o * m + k] * ut[k];
          y[o * L + t] = s;
        }
      }
      std::copy(x.begin(), x.end(), static_cast<T*>(p.x_last) + b * n);
    }
  });
}

template <typename T>
void convolve_t(const ConvolveParams& p) {
  using C = std::complex<T>;
  const int64_t L = p.L, Lk = std::min(p.Lk, p.L);
  const int64_t nfft = next_pow2(std::max<int64_t>(2, L + Lk - 1));
  const RealFft<T> fft(nfft);
  const int64_t bins = fft.bins();
  const int64_t kernels = p.mimo ? p.p * p.m : p.m;
  const T* u = static_cast<const T*>(p.u);
  const T* K = static_cast<const T*>(p.K);
  const T* D = static_cast<const T*>(p.D);
  T* y = static_cast<T*>(p.y);
  // Spectra of many rows: src row r (len taps) zero-padded to nfft -> dst + r·bins.
  auto spectra = [&](const T* src, int64_t rows, int64_t stride, int64_t len, C* dst) {
    parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
      std::vector<T> buf(nfft);
      for (int64_t r = r0; r < r1; ++r) {
        std::copy(src + r * stride, src + r * stride + len, buf.begin());
        std::fill(buf.begin() + len, buf.end(), T(0));
        fft.forward(buf.data(), dst + r * bins);
      }
    });
  };
  std::vector<C> Kf(kernels * bins);
  spectra(K, kernels, p.Lk, Lk, Kf.data());
  if (!p.mimo) {
    parallel_for(p.batch * p.m, 1, [&](int64_t r0, int64_t r1) {
      std::vector<T> buf(nfft);
      std::vector<C> X(bins);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t ch = r % p.m;
        const T* ur = u + r * L;
        std::copy(ur, ur + L, buf.begin());
        std::fill(buf.begin() + L, buf.end(), T(0));
        fft.forward(buf.data(), X.data());
        const C* kf = Kf.data() + ch * bins;
        for (int64_t k = 0; k < bins; ++k) X[k] = cmul(X[k], kf[k]);
        fft.inverse(X.data(), buf.data());
        const T dch = D ? D[ch] : T(0);
        T* yr = y + r * L;
        for (int64_t t = 0; t < L; ++t) yr[t] = buf[t] + dch * ur[t];
      }
    });
    return;
  }
  std::vector<C> Uf(p.batch * p.m * bins);
  spectra(u, p.batch * p.m, L, L, Uf.data());
  parallel_for(p.batch * p.p, 1, [&](int64_t r0, int64_t r1) {
    std::vector<T> buf(nfft);
    std::vector<C> acc(bins);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / p.p, o = r % p.p;
      std::fill(acc.begin(), acc.end(), C(0));
      for (int64_t k = 0; k < p.m; ++k) {
        const C* uf = Uf.data() + (b * p.m + k) * bins;
        const C* kf = Kf.data() + (o * p.m + k) * bins;
        for (int64_t f = 0; f < bins; ++f) acc[f] += cmul(uf[f], kf[f]);
      }
      fft.inverse(acc.data(), buf.data());
      T* yr = y + r * L;
      for (int64_t t = 0; t < L; ++t) yr[t] = buf[t];
      if (D)
        for (int64_t k = 0; k < p.m; ++k) {
          const T dk = D[o * p.m + k];
          const T* uk = u + (b * p.m + k) * L;
          for (int64_t t = 0; t < L; ++t) yr[t] += dk * uk[t];
        }
    }
  });
}

}  // namespace

void simulate_cpu(const SimulateParams& p) {
  float_switch(p.dtype, [&](auto t) { simulate_t<decltype(t)>(p); });
}

void convolve_cpu(const ConvolveParams& p) {
  float_switch(p.dtype, [&](auto t) { convolve_t<decltype(t)>(p); });
}

void kernel_cpu(const KernelParams& p) {
  const int64_t n = p.n, m = p.m, q = p.p, L = p.L;
  const Mat A = load(p.A, p.dtype, n * n), B = load(p.B, p.dtype, n * m), C = load(p.C, p.dtype, q * n);
  parallel_for(m, 1, [&](int64_t c0, int64_t c1) {
    std::vector<double> x(n), xn(n), k(q * L);
    for (int64_t col = c0; col < c1; ++col) {
      for (int64_t i = 0; i < n; ++i) x[i] = B[i * m + col];
      for (int64_t l = 0; l < L; ++l) {
        for (int64_t o = 0; o < q; ++o) k[o * L + l] = dot(C.data() + o * n, x.data(), n);
        for (int64_t i = 0; i < n; ++i) xn[i] = dot(A.data() + i * n, x.data(), n);
        x.swap(xn);
      }
      for (int64_t o = 0; o < q; ++o) store(at(p.K, p.dtype, (o * m + col) * L), p.dtype, k.data() + o * L, L);
    }
  });
}

}  // namespace ss::classical
