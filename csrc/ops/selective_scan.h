// Mamba-1 selective scan (forward and backward): one parameter struct shared by the CPU and
// CUDA backends. All tensors are contiguous by the time they get here (csrc/ops/selective_scan.cc
// copies strided inputs), so only sizes and pointers travel.
//
//   delta'_t = softplus(delta_t + deltaBias) (or delta_t + deltaBias)
//   x_t = exp(delta'_t A) * x_{t-1} + delta'_t B_t u_t      (x_{t-1} = 0 where seqIdx changes)
//   y_t = <C_t, x_t> + D u_t;   out_t = y_t * silu(z_t)
#pragma once
#include <cstdint>
#include "core/dtype.h"

namespace ss {

// How B (or C) varies: one (dim, dstate) matrix, or per step (batch, groups, dstate, seqlen)
// with groups = 1 for the (batch, dstate, seqlen) form.
enum class ScanBCForm : int { TimeInvariant = 0, PerStep = 1 };

struct SelectiveScanParams {
  int64_t batch = 0, dim = 0, seqlen = 0, dstate = 0;
  int64_t b_groups = 1, c_groups = 1;  // per-step B/C groups (dim % groups == 0)
  ScanBCForm b_form = ScanBCForm::PerStep, c_form = ScanBCForm::PerStep;
  DType dtype = DType::Float32;  // u, delta, z, B, C, y, du, ddelta, dz, dB, dC
  bool delta_softplus = false;

  // inputs (null when absent)
  const void* u = nullptr;      // (batch, dim, seqlen)
  const void* delta = nullptr;  // (batch, dim, seqlen)
  const void* z = nullptr;      // (batch, dim, seqlen)
  const void* A = nullptr;      // (dim, dstate)            f32 (f64 on the float64 path)
  const void* B = nullptr;
  const void* C = nullptr;
  const void* D = nullptr;            // (dim)                f32 / f64
  const void* delta_bias = nullptr;   // (dim)                f32 / f64
  const void* initial_state = nullptr;  // (batch, dim, dstate) f32 / f64
  const int32_t* seq_idx = nullptr;   // (batch, seqlen)

  // forward outputs
  void* y = nullptr;           // (batch, dim, seqlen)
  void* last_state = nullptr;  // (batch, dim, dstate), optional

  // backward inputs / outputs
  const void* dy = nullptr;          // (batch, dim, seqlen)
  const void* d_last_state = nullptr;  // (batch, dim, dstate), optional
  void* du = nullptr;
  void* ddelta = nullptr;
  void* dz = nullptr;              // when z
  void* dA = nullptr;              // (dim, dstate)
  void* dB = nullptr;              // like B
  void* dC = nullptr;              // like C
  void* dD = nullptr;              // when D
  void* d_delta_bias = nullptr;    // when deltaBias
  void* d_initial_state = nullptr;  // when initialState

  // CUDA only: f32 state checkpoints written by the forward for the backward
  // (batch, dim, n_chunks, dstate); and scratch for deterministic reductions.
  float* checkpoints = nullptr;
  int64_t n_chunks = 0;
  float* scratch = nullptr;
  int64_t scratch_floats = 0;

  // CUDA forward only: rows too few to fill the GPU are split along time into n_seg segments of
  // seg_len steps; seg_ends (batch, dim, n_seg - 1, dstate + 2) f32 holds each segment's end state
  // from a zero start, its sum of delta' and whether a restart (seqIdx) drops the carried state.
  int64_t n_seg = 1, seg_len = 0;
  float* seg_ends = nullptr;
};

void selective_scan_fwd_cpu(const SelectiveScanParams& p);
void selective_scan_bwd_cpu(const SelectiveScanParams& p);

// CUDA: the chunk length of the forward (checkpoint interval) and the scratch the backward needs.
int64_t selective_scan_cuda_chunk(const SelectiveScanParams& p);
// How many time segments the forward splits a row into (1: none), and their length.
int64_t selective_scan_cuda_segments(const SelectiveScanParams& p, int64_t* seg_len);
int64_t selective_scan_cuda_bwd_scratch_floats(const SelectiveScanParams& p);
void selective_scan_fwd_cuda(const SelectiveScanParams& p, void* stream);
void selective_scan_bwd_cuda(const SelectiveScanParams& p, void* stream);

}  // namespace ss
