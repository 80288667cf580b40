// FFTs for the classical toolkit: an iterative radix-2 complex FFT, a real FFT of length n
// through a complex FFT of length n/2, and Bluestein's chirp-z transform for any length
// (used for the length-L inverse DFT of the S4 generating function). Plans are immutable
// after construction, so one plan serves every thread.
#pragma once
#include <complex>
#include <cstdint>
#include <vector>

namespace ss::classical {

int64_t next_pow2(int64_t n);

template <typename T>
class FftPlan {
 public:
  explicit FftPlan(int64_t n);  // n a power of two
  int64_t size() const { return n_; }
  // In place, unnormalised: X_k = Σ_j x_j e^{∓2πi jk/n} (− forward, + inverse).
  void forward(std::complex<T>* x) const { run(x, false); }
  void inverse(std::complex<T>* x) const { run(x, true); }

 private:
  void run(std::complex<T>* x, bool inverse) const;
  int64_t n_;
  std::vector<int32_t> rev_;
  // Twiddles of each stage stored contiguously (stage with half-length h at offset h − 1:
  // e^{-2πij/(2h)}, j < h), split into re and im so the butterfly loops vectorise.
  std::vector<T> wr_, wi_;
};

// Real FFT of even length n: n reals <-> n/2 + 1 complex bins (the rest follow by symmetry).
template <typename T>
class RealFft {
 public:
  explicit RealFft(int64_t n);  // n a power of two, >= 2
  int64_t size() const { return n_; }
  int64_t bins() const { return n_ / 2 + 1; }
  // X (bins()) = DFT of x (n reals).
  void forward(const T* x, std::complex<T>* X) const;
  // x (n reals) = inverse DFT of X including the 1/n factor. X is used as scratch.
  void inverse(std::complex<T>* X, T* x) const;

 private:
  int64_t n_;
  FftPlan<T> half_;
  std::vector<std::complex<T>> w_;  // e^{-2πik/n}, k <= n/4
};

// Length-n DFT for any n (radix-2 when n is a power of two, else Bluestein), out of place.
// inverse: e^{+2πi jk/n}, unnormalised.
void dft_any(int64_t n, const std::complex<double>* x, std::complex<double>* X, bool inverse);

}  // namespace ss::classical
