#pragma once
// Member health as the data plane sees it. Probes and the rise/fall state
// machine arrive with the health issue; until then every member is Up.

#include <string_view>

namespace health {

enum class State { Up, Down };

std::string_view toString(State state);

}  // namespace health
