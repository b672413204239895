#include "health/health.h"

namespace health {

std::string_view toString(State state) {
  switch (state) {
    case State::Up: return "up";
    case State::Down: return "down";
  }
  return "unknown";
}

}  // namespace health
