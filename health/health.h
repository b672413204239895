#pragma once
// Member health as the data plane sees it, and the time types shared by the
// health code. Nothing in health/ reads the clock: callers pass `now` in.

#include <chrono>
#include <string_view>

namespace health {

enum class State { Up, Down };

std::string_view toString(State state);

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

}  // namespace health
