// A second stream per device, for work of one op that may run beside the rest of that op on the
// device's stream (a decode step's in_proj columns that the conv step and x_proj do not read).
// fork_side makes the side stream wait for the work enqueued on the device's stream so far;
// join_side makes the device's stream wait for the side's. Both are stream-ordered (events), so
// they work eagerly and inside a graph capture (the side stream joins the capture at the fork and
// must be joined back before the capture ends: an op forks and joins within itself).
// The device's stream is created with the greatest priority (runtime.cu) and the side stream with
// the least, so that while both have blocks waiting, the device stream's get the SMs first.
#pragma once

namespace ss::cuda {

void* side_stream(int device);
void fork_side(void* main_stream, int device);
void join_side(void* main_stream, int device);

}  // namespace ss::cuda
