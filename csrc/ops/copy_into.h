// copy_into: writes a tensor into a contiguous region of another (a state slot of a batched
// cache), converting the element type. The model scheduler uses it to load a sequence's prefill
// state into its slot and to compact slots when a sequence retires.
#pragma once
#include "core/tensor.h"

namespace ss {

// dst (contiguous, any offset) <- src (any strides), same shape and device.
void copy_into(const Tensor& dst, const Tensor& src);

}  // namespace ss
