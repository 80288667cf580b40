// Continuous -> discrete time: x' = A x + B u  becomes  x_k = Ā x_{k-1} + B̄ u_k.
// Dense A (n, n); real diagonal A (n); complex diagonal A (n, 2) (interleaved re, im).
#pragma once
#include <string>
#include "core/tensor.h"

namespace ss::classical {

enum class Method { Zoh, Bilinear, Euler, BackwardEuler };
enum class Structure { Dense, Diagonal, ComplexDiagonal };

struct DiscretizeParams {
  Structure structure;
  Method method;
  DType dtype;
  int64_t n, m;      // state size, input size
  double dt;
  bool b_complex;    // complex diagonal only: B given as (n, m, 2) rather than real (n, m)
  const void* A;
  const void* B;
  void* Ad;          // like A
  void* Bd;          // (n, m), or (n, m, 2) for a complex diagonal A
};

void discretize_cpu(const DiscretizeParams& p);

Method parse_method(const std::string& s, bool allow_euler = true);

struct Discretized {
  Tensor Ad, Bd;
};
// `diagonal` / `complex` pick the structure of A (see above); dense when neither.
Discretized discretize(const Tensor& A, const Tensor& B, double dt, Method method, bool diagonal, bool complex);

}  // namespace ss::classical
