// Tensor maps for the Hopper bulk tensor copy engine (TMA), encoded on the host through the
// driver's cuTensorMapEncodeTiled, found at run time (cudaGetDriverEntryPointByVersion: the
// build machine has no driver library to link).
#pragma once
#include <cuda.h>
#include <cstdint>

namespace ss::cuda {

// A tiled map of a 16-bit tensor (bf16 or f16) of `rank` dimensions (dims[0] innermost and
// contiguous; strides_bytes: the rank − 1 outer strides), boxes of box[0..rank) elements landing
// in shared memory 128-byte swizzled (box[0] · 2 ≤ 128), elements outside the tensor read as
// zero. False (map untouched) when the driver lacks the entry point or refuses the layout
// (address or strides not multiples of 16 bytes, ...): the caller takes another path.
bool encode_tile_map_16(CUtensorMap* map, bool bf16, const void* base, int rank, const uint64_t* dims,
                        const uint64_t* strides_bytes, const uint32_t* box);

// encode_tile_map_16 through a small per-thread cache keyed by every argument (thread-safe without
// a lock; a map holds the global address, so it is the same on every device): calls that repeat
// their tensors — a layer's forward in a loop, a decode step — skip the driver's encoder. Refusals
// are remembered too.
bool encode_tile_map_16_cached(CUtensorMap* map, bool bf16, const void* base, int rank, const uint64_t* dims,
                               const uint64_t* strides_bytes, const uint32_t* box);

}  // namespace ss::cuda
