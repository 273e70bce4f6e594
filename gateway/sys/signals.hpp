#pragma once
// Synchronous signal handling for the main thread of `acmegw run`: the signals are blocked in
// every thread (block before starting workers, which inherit the mask) and taken with
// sigtimedwait, so no async-signal-safety rules apply to what we do on them.
#include <chrono>
#include <initializer_list>

#include "gateway/sys/result.hpp"

namespace acmegw::sys {

// Blocks `signals` in the calling thread; threads created afterwards inherit the mask.
[[nodiscard]] SysResult<bool> block_signals(std::initializer_list<int> signals) noexcept;

// Waits up to `timeout` for one of `signals` (which must be blocked). Returns the signal number,
// or 0 when the timeout passed.
[[nodiscard]] SysResult<int> wait_signal(std::initializer_list<int> signals,
                                         std::chrono::milliseconds timeout) noexcept;

}  // namespace acmegw::sys
