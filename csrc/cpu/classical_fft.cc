#include "cpu/classical_fft.h"
#include <algorithm>
#include <cmath>
#include "cpu/classical_linalg.h"

namespace ss::classical {

int64_t next_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

template <typename T>
FftPlan<T>::FftPlan(int64_t n) : n_(n), rev_(n), wr_(std::max<int64_t>(n - 1, 1)), wi_(std::max<int64_t>(n - 1, 1)) {
  int bits = 0;
  while ((int64_t{1} << bits) < n) ++bits;
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = 0;
    for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1) << (bits - 1 - b);
    rev_[i] = static_cast<int32_t>(r);
  }
  // Twiddles from float64 angles, so a float32 plan carries no extra error.
  for (int64_t h = 1; h < n; h <<= 1)
    for (int64_t j = 0; j < h; ++j) {
      double a = -M_PI * static_cast<double>(j) / static_cast<double>(h);
      wr_[h - 1 + j] = static_cast<T>(std::cos(a));
      wi_[h - 1 + j] = static_cast<T>(std::sin(a));
    }
}

// One radix-2 stage over all blocks of length 2h: b <- a − w·b, a <- a + w·b. A free function
// with restrict-qualified arguments, so the j loop vectorises.
template <typename T>
static void radix2_stage(T* __restrict re, T* __restrict im, const T* __restrict wr, const T* __restrict wi, int64_t n,
                         int64_t h, T sign) {
  for (int64_t i = 0; i < n; i += 2 * h) {
    T* __restrict ar = re + i;
    T* __restrict ai = im + i;
    T* __restrict br = re + i + h;
    T* __restrict bi = im + i + h;
    for (int64_t j = 0; j < h; ++j) {
      const T w_i = sign * wi[j];
      const T vr = br[j] * wr[j] - bi[j] * w_i, vi = br[j] * w_i + bi[j] * wr[j];
      br[j] = ar[j] - vr;
      bi[j] = ai[j] - vi;
      ar[j] += vr;
      ai[j] += vi;
    }
  }
}

// Radix-2 decimation in time on split re/im arrays: the bit-reversal permutation happens while
// deinterleaving into thread-local scratch; the first two stages (twiddles ±1, ∓i) run as one
// radix-4 pass; later stages have contiguous inner loops the compiler vectorises.
template <typename T>
void FftPlan<T>::run(std::complex<T>* x, bool inverse) const {
  const int64_t n = n_;
  if (n == 1) return;
  thread_local std::vector<T> re_buf, im_buf;
  re_buf.resize(n);
  im_buf.resize(n);
  T* __restrict re = re_buf.data();
  T* __restrict im = im_buf.data();
  for (int64_t i = 0; i < n; ++i) {
    re[i] = x[rev_[i]].real();
    im[i] = x[rev_[i]].imag();
  }
  const T sign = inverse ? T(-1) : T(1);
  int64_t h = 1;
  if (n >= 4) {
    for (int64_t i = 0; i < n; i += 4) {
      const T a0r = re[i] + re[i + 1], a0i = im[i] + im[i + 1];
      const T a1r = re[i] - re[i + 1], a1i = im[i] - im[i + 1];
      const T b0r = re[i + 2] + re[i + 3], b0i = im[i + 2] + im[i + 3];
      const T b1r = re[i + 2] - re[i + 3], b1i = im[i + 2] - im[i + 3];
      // second stage twiddles: 1 and −i (forward) / +i (inverse)
      const T cr = sign * b1i, ci = -sign * b1r;
      re[i] = a0r + b0r;
      im[i] = a0i + b0i;
      re[i + 2] = a0r - b0r;
      im[i + 2] = a0i - b0i;
      re[i + 1] = a1r + cr;
      im[i + 1] = a1i + ci;
      re[i + 3] = a1r - cr;
      im[i + 3] = a1i - ci;
    }
    h = 4;
  }
  for (; h < n; h <<= 1) radix2_stage(re, im, wr_.data() + h - 1, wi_.data() + h - 1, n, h, sign);
  for (int64_t i = 0; i < n; ++i) x[i] = {re[i], im[i]};
}

template <typename T>
RealFft<T>::RealFft(int64_t n) : n_(n), half_(n / 2), w_(n / 4 + 1) {
  for (int64_t k = 0; k <= n / 4; ++k) {
    double a = -2.0 * M_PI * static_cast<double>(k) / static_cast<double>(n);
    w_[k] = {static_cast<T>(std::cos(a)), static_cast<T>(std::sin(a))};
  }
}

// Packing z_j = x_{2j} + i x_{2j+1} gives Z = E + iO (E, O the half-length DFTs of the even
// and odd samples); X_k = E_k + W^k O_k with E_k = (Z_k + conj Z_{h-k})/2 and
// O_k = (Z_k − conj Z_{h-k})/(2i). Bins k and h−k are formed together, in place.
template <typename T>
void RealFft<T>::forward(const T* x, std::complex<T>* X) const {
  const int64_t h = n_ / 2;
  for (int64_t j = 0; j < h; ++j) X[j] = {x[2 * j], x[2 * j + 1]};
  half_.forward(X);
  const std::complex<T> z0 = X[0];
  X[0] = {z0.real() + z0.imag(), T(0)};
  X[h] = {z0.real() - z0.imag(), T(0)};
  for (int64_t k = 1; k <= h / 2; ++k) {
    const std::complex<T> a = X[k], b = X[h - k];
    const std::complex<T> wk = w_[k], whk = {-wk.real(), wk.imag()};  // W^{h-k} = −conj(W^k)
    auto bin = [](std::complex<T> zk, std::complex<T> zr, std::complex<T> w) {
      const std::complex<T> e = T(0.5) * (zk + std::conj(zr));
      const std::complex<T> o = T(0.5) * (zk - std::conj(zr));  // = i O_k
      const std::complex<T> wo = cmul(w, o);                    // i W^k O_k
      return std::complex<T>{e.real() + wo.imag(), e.imag() - wo.real()};  // e − i·(i W O)
    };
    X[k] = bin(a, b, wk);
    if (k != h - k) X[h - k] = bin(b, a, whk);
  }
}

template <typename T>
void RealFft<T>::inverse(std::complex<T>* X, T* x) const {
  const int64_t h = n_ / 2;
  // Z_k = E_k + i O_k with E_k = (X_k + conj X_{h-k})/2, O_k = (X_k − conj X_{h-k}) W^{-k}/2.
  auto pre = [](std::complex<T> xk, std::complex<T> xr, std::complex<T> w) {
    const std::complex<T> e = T(0.5) * (xk + std::conj(xr));
    const std::complex<T> o = cmul(T(0.5) * (xk - std::conj(xr)), std::conj(w));
    return std::complex<T>{e.real() - o.imag(), e.imag() + o.real()};
  };
  const std::complex<T> x0 = X[0], xh = X[h];
  X[0] = pre(x0, xh, {T(1), T(0)});
  for (int64_t k = 1; k <= h / 2; ++k) {
    const std::complex<T> a = X[k], b = X[h - k];
    const std::complex<T> wk = w_[k], whk = {-wk.real(), wk.imag()};
    X[k] = pre(a, b, wk);
    if (k != h - k) X[h - k] = pre(b, a, whk);
  }
  half_.inverse(X);
  const T s = T(1) / static_cast<T>(h);
  for (int64_t j = 0; j < h; ++j) {
    x[2 * j] = X[j].real() * s;
    x[2 * j + 1] = X[j].imag() * s;
  }
}

void dft_any(int64_t n, const cd* x, cd* X, bool inverse) {
  if (n <= 0) return;
  if ((n & (n - 1)) == 0) {
    FftPlan<double> plan(n);
    for (int64_t i = 0; i < n; ++i) X[i] = x[i];
    if (inverse) plan.inverse(X);
    else plan.forward(X);
    return;
  }
  // Bluestein: jk = (j² + k² − (k−j)²)/2 turns the DFT into a convolution with the chirp
  // c_m = e^{±iπ m²/n}; m² is reduced mod 2n so the angle stays exact for large n.
  const double sgn = inverse ? 1.0 : -1.0;
  std::vector<cd> chirp(n);
  for (int64_t m = 0; m < n; ++m) {
    int64_t m2 = (m * m) % (2 * n);
    double a = sgn * M_PI * static_cast<double>(m2) / static_cast<double>(n);
    chirp[m] = {std::cos(a), std::sin(a)};
  }
  const int64_t len = next_pow2(2 * n - 1);
  FftPlan<double> plan(len);
  std::vector<cd> a(len, cd(0.0)), b(len, cd(0.0));
  for (int64_t j = 0; j < n; ++j) a[j] = cmul(x[j], chirp[j]);
  b[0] = std::conj(chirp[0]);
  for (int64_t m = 1; m < n; ++m) b[m] = b[len - m] = std::conj(chirp[m]);
  plan.forward(a.data());
  plan.forward(b.data());
  for (int64_t i = 0; i < len; ++i) a[i] = cmul(a[i], b[i]);
  plan.inverse(a.data());
  const double s = 1.0 / static_cast<double>(len);
  for (int64_t k = 0; k < n; ++k) X[k] = cmul(a[k], chirp[k]) * s;
}

template class FftPlan<float>;
template class FftPlan<double>;
template class RealFft<float>;
template class RealFft<double>;

}  // namespace ss::classical
