// HiPPO matrices and the structured initialisations built from them (S4D diagonals, the
// normal-plus-low-rank form of S4). Complex outputs are interleaved (..., 2) = (re, im).
#pragma once
#include <string>
#include "core/tensor.h"

namespace ss::classical {

enum class HippoKind { LegS, LegT, LagT, Fourier };
enum class S4dKind { LegS, Lin, Inv, Real };

struct HippoParams {
  HippoKind kind;
  int64_t n;
  DType dtype;
  void* A;  // (n, n)
  void* B;  // (n, 1)
};

// Normal plus low rank: A = V (Λ − P̃ P̃ᴴ) Vᴴ with P̃ = Vᴴ P, B̃ = Vᴴ B.
struct NplrParams {
  HippoKind kind;  // LegS or Fourier (the measures with a rank-1 correction)
  int64_t n;
  DType dtype;
  void* lambda;  // (n, 2)
  void* P;       // (n, 2)
  void* B;       // (n, 2)
  void* V;       // (n, n, 2)
};

struct S4dInitParams {
  S4dKind kind;
  int64_t n;  // modes (the real system they stand for, with conjugates, has size 2n)
  DType dtype;
  void* lambda;  // (n, 2)
  void* B;       // (n, 2)
};

void hippo_cpu(const HippoParams& p);
void nplr_cpu(const NplrParams& p);
void s4d_init_cpu(const S4dInitParams& p);

struct HippoResult { Tensor A, B; };
struct NplrResult { Tensor lambda, P, B, V; };
struct S4dInitResult { Tensor lambda, B; };

HippoResult hippo(const std::string& kind, int64_t n, DType dtype);
NplrResult nplr(const std::string& kind, int64_t n, DType dtype);
S4dInitResult s4d_init(const std::string& kind, int64_t n, DType dtype);

}  // namespace ss::classical
