#include "ops/tensor_ops.h"
#include <cstring>
#include "core/half.h"
#include "core/work_queue.h"
#include "ops/dispatch.h"
#ifdef STATESPACE_WITH_CUDA
#include "cuda/pinned_read.h"
#include "cuda/runtime.h"
#include "cuda/side_stream.h"
#endif

namespace ss {
namespace {

void check_shape(const std::vector<int64_t>& shape) {
  if (static_cast<int>(shape.size()) > kMaxDims)
    fail("ERR_SHAPE", ErrorKind::Range, "shape: at most " + std::to_string(kMaxDims) + " dimensions, got " + std::to_string(shape.size()));
  for (int64_t s : shape)
    if (s < 0) fail("ERR_SHAPE", ErrorKind::Range, "shape: sizes must be non-negative, got " + shape_str(shape));
}

StridedCopyParams copy_params(const Tensor& src, const Tensor& dst) {
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
  return p;
}

// Enqueues dst (contiguous from dst.data()) <- src on their device.
void enqueue_copy(const Tensor& src, const Tensor& dst) {
  if (dst.numel() == 0) return;
  StridedCopyParams p = copy_params(src, dst);
  if (src.device().is_cpu()) {
    run_cpu({src}, {dst}, [p] { strided_copy_cpu(p); });
  } else {
    strided_copy_cuda(p, cuda_stream_for(src.device()));
  }
}

// Same-device copy/convert into a fresh contiguous tensor.
Tensor copy_same_device(const Tensor& src, DType dtype) {
  Tensor dst = empty(src.shape, dtype, src.device());
  enqueue_copy(src, dst);
  return dst;
}

}  // namespace

Tensor fill(const std::vector<int64_t>& shape, DType dtype, Device device, FillKind kind, uint64_t seed, double a,
            double b) {
  check_shape(shape);
  if (dtype == DType::Int32 && kind != FillKind::Constant)
    fail("ERR_DTYPE", ErrorKind::Type, "dtype: random tensors must be floating point, got int32");
  Tensor t = empty(shape, dtype, device);
  FillParams p{t.data(), dtype, t.numel(), kind, seed, a, b};
  if (p.n == 0) return t;
  if (device.is_cpu()) {
    run_cpu({}, {t}, [p] { fill_cpu(p); });
  } else {
    fill_cuda(p, cuda_stream_for(device));
  }
  return t;
}

#ifdef STATESPACE_WITH_CUDA
namespace {
// CPU src into the contiguous CUDA dst (same shape), converted to dst's dtype on the CPU: one
// upload in stream order. The CPU work that produces src must finish first (this waits for it).
void upload(const Tensor& src, const Tensor& dst) {
  Tensor host = src.is_contiguous() && src.dtype == dst.dtype ? src : copy_same_device(src, dst.dtype);
  wait_idle(Device{});
  if (auto err = host.storage->error()) throw *err;
  cuda::copy_h2d(dst.data(), host.data(), host.nbytes(), dst.device().index);
}
}  // namespace
#endif

void copy_into(const Tensor& dst, const Tensor& src) {
  if (dst.shape != src.shape)
    fail("ERR_SHAPE", ErrorKind::Range, "src: expected the shape of dst " + shape_str(dst.shape) + ", got " + shape_str(src.shape));
  if (!dst.is_contiguous())
    fail("ERR_INVALID_ARG", ErrorKind::Type, "dst: expected a contiguous tensor or view (a slice along the first dimension)");
  if ((dst.dtype == DType::Int32) != (src.dtype == DType::Int32))
    fail("ERR_DTYPE", ErrorKind::Type, std::string("src: cannot copy ") + dtype_name(src.dtype) + " into " + dtype_name(dst.dtype));
#ifdef STATESPACE_WITH_CUDA
  // Host data straight into a device tensor (a decode step's per-token inputs): no device temporary.
  if (dst.device().is_cuda() && src.device().is_cpu()) return upload(src, dst);
#endif
  check_same_device(dst.device(), {{"src", &src}});
  enqueue_copy(src, dst);  // dst.data() already includes the view's offset
}

Tensor contiguous(const Tensor& src) { return src.is_contiguous() ? src : copy_same_device(src, src.dtype); }

Tensor copy_to(const Tensor& src, DType dtype, Device device) {
  if (src.device() == device) return copy_same_device(src, dtype);
#ifdef STATESPACE_WITH_CUDA
  if (device.is_cuda() && dtype == DType::Float64)
    fail("ERR_DTYPE", ErrorKind::Type, "dtype: float64 tensors exist on the CPU only (for references), not on " + device.str());
  if (src.device().is_cpu()) {
    Tensor dev = empty(src.shape, dtype, device);
    upload(src, dev);
    return dev;
  }
  // Device -> host (or device -> another device through the host), in stream order, so later
  // in-place ops can't change what is read: a small contiguous tensor straight into pinned
  // staging (cuda::start_read_d2h), anything else through a contiguous device-side snapshot.
  int dev_index = src.device().index;
  // What an op left running on the side stream (linear_conv_update's rest_on_side) may be part of
  // src: joined before the snapshot or the staging copy is enqueued.
  if (!cuda::capturing(dev_index)) cuda::join_side_if_forked(cuda::stream(dev_index), dev_index);
  if (src.is_contiguous() && src.dtype != DType::Float64 && src.nbytes() <= cuda::kPinnedReadBytes) {
    Tensor host = empty(src.shape, src.dtype, Device{});
    std::shared_ptr<cuda::PendingRead> read = cuda::start_read_d2h(src.data(), src.nbytes(), dev_index);
    run_cpu({src}, {host}, [read, host] { read->finish(host.data()); });
    Tensor out = host.dtype == dtype ? host : copy_same_device(host, dtype);
    return device.is_cpu() ? out : copy_to(out, dtype, device);
  }
  Tensor snap = copy_same_device(src, src.dtype == DType::Float64 ? DType::Float32 : src.dtype);
  Tensor host = empty(src.shape, snap.dtype, Device{});
  void* ev = cuda::record_event(dev_index);
  run_cpu({snap}, {host}, [snap, host, ev, dev_index] {
    cuda::wait_event_and_copy_d2h(host.data(), snap.data(), snap.nbytes(), ev, dev_index);
  });
  Tensor out = host.dtype == dtype ? host : copy_same_device(host, dtype);
  return device.is_cpu() ? out : copy_to(out, dtype, device);
#else
  (void)dtype;
  fail("ERR_DEVICE", ErrorKind::Type, "device " + (src.device().is_cpu() ? device : src.device()).str() +
                                           " is not available: statespace was built without CUDA");
#endif
}

Tensor from_host(const void* data, HostFormat fmt, const std::vector<int64_t>& shape, DType dtype, Device device) {
  check_shape(shape);
  DType staged = fmt == HostFormat::F32 ? DType::Float32
                 : fmt == HostFormat::F64 ? DType::Float64
                 : fmt == HostFormat::I32 ? DType::Int32
                                          : dtype;
  if (fmt == HostFormat::Bits16 && dtype != DType::Float16 && dtype != DType::BFloat16)
    fail("ERR_DTYPE", ErrorKind::Type, "data: a Uint16Array holds raw float16/bfloat16 bits, but dtype is " + std::string(dtype_name(dtype)));
  Tensor host = empty(shape, staged, Device{});
  std::memcpy(host.data(), data, host.nbytes());
  if (staged == dtype && device.is_cpu()) return host;
  return copy_to(host, dtype, device);
}

size_t read_bytes(const Tensor& t, bool bits) {
  bool half = t.dtype == DType::Float16 || t.dtype == DType::BFloat16;
  return static_cast<size_t>(t.numel()) * (half && !bits ? 4 : dtype_size(t.dtype));
}

void read_async(const Tensor& t, void* dst, bool bits, ReadDone done) {
  bool half = t.dtype == DType::Float16 || t.dtype == DType::BFloat16;
  DType want = half && !bits ? DType::Float32 : t.dtype;
  Tensor host = t.device().is_cpu() ? contiguous(t) : copy_to(t, t.dtype, Device{});
  if (want != host.dtype) host = copy_same_device(host, want);
  enqueue(Device{}, [host, dst, done = std::move(done)] {
    auto err = host.storage->error();
    if (!err) std::memcpy(dst, host.data(), host.nbytes());
    done(err);
  });
}

void synchronize_async(Device d, std::function<void(std::shared_ptr<const Error>)> done) {
  if (d.is_cpu()) {
    enqueue(d, [done = std::move(done)] { done(nullptr); });
    return;
  }
#ifdef STATESPACE_WITH_CUDA
  void* ev = cuda::record_event(d.index);
  int idx = d.index;
  enqueue(d, [ev, idx, done = std::move(done)] {
    try {
      cuda::wait_event(ev, idx);
      done(nullptr);
    } catch (const Error& e) {
      done(std::make_shared<Error>(e));
    }
  });
#else
  fail("ERR_DEVICE", ErrorKind::Type, "device " + d.str() + " is not available: statespace was built without CUDA");
#endif
}

}  // namespace ss
