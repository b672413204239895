#pragma once
// [global] user and group: who ringlb runs as once it has bound its
// listeners and opened its files.
//
// Started as root, the process switches for good (real, effective and saved
// ids) in this order: supplementary groups dropped, then the group, then the
// user; then checks the result and that root cannot be regained. It does so
// while it is still one thread with no io_uring ring: workers, the control
// thread and the rings' io-wq threads are all created afterwards and take
// the new credentials from their creator.
//
// Not started as root (HAProxy's behaviour): `user`/`group` must be who the
// process already is, else it refuses to start (switching needs root).

#include <sys/types.h>

#include <optional>
#include <string>

#include "config/config.h"

namespace lb {

struct Identity {
  std::optional<uid_t> uid;  // `user` set
  std::optional<gid_t> gid;  // `group` set, or the user's primary group
  std::string user;          // names as configured (the group's looked up when only `user` is set)
  std::string group;

  bool wanted() const { return uid || gid; }
};

// Looks the names up (before anything is bound, so a typo stops the start
// at once). nullopt and `whyNot` (file:line:col: ...) for a name that does
// not exist.
std::optional<Identity> resolveIdentity(const config::Config& config, std::string* whyNot);

// Becomes `identity` (see above); logs what it did, warns when root stays
// root. false and `whyNot` when any step fails: the process must not start.
bool becomeIdentity(const Identity& identity, std::string* whyNot);

}  // namespace lb
