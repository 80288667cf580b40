// A second stream per device, for work of one op that may run beside the rest of that op on the
// device's stream (a decode step's in_proj columns that the conv step and x_proj do not read).
// fork_side makes the side stream wait for the work enqueued on the device's stream so far;
// join_side makes the device's stream wait for the side's. Both are stream-ordered (events), so
// they work eagerly and inside a graph capture (the side stream joins the capture at the fork and
// must be joined back before the capture ends). linear_conv_update_proj forks and joins within
// itself; linear_conv_update's rest_on_side leaves the side forked, and join_side_if_forked then
// joins it from the ops that read its columns (a linear with a gate, rmsNorm with z, the state
// update with z), host reads, synchronize, and the start and end of a graph capture. A tensor the
// side kernel writes must stay alive until then (the allocator orders frees on the device stream).
// Both streams have the default priority: with the side stream at the least and the device's at
// the greatest (graphs instantiated with node priorities) mamba2-2.7b's b64 step lost 0.09 ms and
// mamba-2.8b's tied (bench/NOTES.md, b64x7 run 3).
#pragma once

namespace ss::cuda {

void* side_stream(int device);
void fork_side(void* main_stream, int device);
void join_side(void* main_stream, int device);
// join_side if the side stream has been forked and not joined since.
void join_side_if_forked(void* main_stream, int device);

}  // namespace ss::cuda
