#include "ops/copy_into.h"
#include "core/error.h"
#include "ops/dispatch.h"
#include "ops/tensor_ops.h"

namespace ss {

void copy_into(const Tensor& dst, const Tensor& src) {
  if (dst.shape != src.shape)
    fail("ERR_SHAPE", ErrorKind::Range, "src: expected the shape of dst " + shape_str(dst.shape) + ", got " + shape_str(src.shape));
  if (!dst.is_contiguous())
    fail("ERR_INVALID_ARG", ErrorKind::Type, "dst: expected a contiguous tensor or view (a slice along the first dimension)");
  if (dst.ndim() > kMaxDims)
    fail("ERR_SHAPE", ErrorKind::Range, "dst: at most " + std::to_string(kMaxDims) + " dimensions");
  check_same_device(dst.device(), {{"src", &src}});
  if ((dst.dtype == DType::Float64 || src.dtype == DType::Float64) && !dst.device().is_cpu())
    fail("ERR_DTYPE", ErrorKind::Type, "float64 tensors exist on the CPU only");
  if ((dst.dtype == DType::Int32) != (src.dtype == DType::Int32))
    fail("ERR_DTYPE", ErrorKind::Type, std::string("src: cannot copy ") + dtype_name(src.dtype) + " into " + dtype_name(dst.dtype));
  if (dst.numel() == 0) return;
  // The contiguous-destination strided copy of tensor_ops does exactly this once dst points at
  // the slot: dst.data() already includes the view's offset.
  StridedCopyParams p{};
  p.src = src.data();
  p.dst = dst.data();
  p.src_dtype = src.dtype;
  p.dst_dtype = dst.dtype;
  p.ndim = src.ndim();
  p.n = src.numel();
  for (int i = 0; i < p.ndim; ++i) {
    p.shape[i] = src.shape[i];
    p.src_strides[i] = src.strides[i];
  }
  if (dst.device().is_cpu()) {
    run_cpu({src}, {dst}, [p] { strided_copy_cpu(p); });
  } else {
    strided_copy_cuda(p, cuda_stream_for(dst.device()));
  }
}

}  // namespace ss
