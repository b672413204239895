#pragma once
// Two legs joined through memory, with no socket between them: what the
// unit tests, the tls_records fuzz target and ringlb-handshake-threads use
// in place of the worker's receives and sends.

#include <span>
#include <string>

#include "lb/tls/leg.h"

namespace lb::tls {

// Hands all of `from`'s waiting output to `to` as one input, as one send
// and one receive would; `wire` holds the bytes while `to` reads them.
// False (nothing moved) when there is no output or `to` has not used up
// its previous input.
inline bool carryOutput(Leg& from, Leg& to, std::string* wire) {
  if (!from.hasOutput() || !to.inputConsumed()) return false;
  std::span<const char> out = from.takeOutput();
  wire->assign(out.data(), out.size());
  from.outputSent(out.size());
  to.setInput(wire->data(), wire->size());
  return true;
}

}  // namespace lb::tls
