#pragma once
// The difference between two configs, as a reload from one to the other would
// apply it: every key of every table that differs, as lines for people to read
// (`ringlb --check NEW --against OLD`, lb/preview.h). Tables are matched by
// name (listeners, pools, members), never by position.

#include <string>
#include <vector>

#include "config/config.h"

namespace config {

struct PoolDifference {
  enum class Kind { Added, Removed, Kept };
  std::string name;
  Kind kind = Kind::Kept;
  // Kept: one line per difference ("retries 2 -> 3", "+ member m3
  // (10.0.0.3:9001)", "~ member m2 weight 1 -> 2", "tls verify true ->
  // false", "+ discover api.internal A port 9001 (every 5s)", "- discover
  // _api._tcp.consul SRV", "~ discover api.internal A port 9001 interval
  // 5s -> 10s"); empty when unchanged. A discover entry whose name, type or
  // port changes is another entry (removed and added).
  std::vector<std::string> changes;
};

struct Difference {
  // "[global] KEY OLD -> NEW", "[global.dns] KEY OLD -> NEW" and "[admin]
  // KEY OLD -> NEW", in key order.
  std::vector<std::string> process;
  // "+ listener NAME on ADDRESS -> pool POOL", "- listener NAME on ADDRESS"
  // (a listener whose bind changes is both), "~ listener NAME KEY OLD -> NEW";
  // for [listener.tls] "~ listener NAME + tls (SUMMARY)", "... - tls (SUMMARY)"
  // or "... tls KEY OLD -> NEW"; for routes "~ listener NAME route SNI: OLD
  // -> NEW" (pool names; "(default)": no route). None of these replaces the
  // listener's socket.
  std::vector<std::string> listeners;
  // The new file's pools in its order, then the removed ones.
  std::vector<PoolDifference> pools;
};

Difference difference(const Config& before, const Config& after);

// What a reload from `before` to `after` cannot apply, as errors that refuse
// it: a change of [global] user or group (the process dropped to them at
// start). At the key's position in `after`, or without one when it was
// removed. Empty: the reload may go ahead.
std::vector<Error> reloadRefusals(const Config& before, const Config& after);

}  // namespace config
