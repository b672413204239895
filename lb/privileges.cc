#include "lb/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "config/file_error.h"
#include "lb/log.h"

namespace lb {
namespace {

// getpwnam_r/getgrnam_r/getgrgid_r with a buffer grown until the entry fits.
// Returns 0 (found or not: `*found`) or an errno.
template <typename Entry, typename Lookup>
int lookUp(Lookup lookup, Entry* entry, std::vector<char>* buffer, Entry** found) {
  buffer->resize(4096);
  for (;;) {
    int result = lookup(entry, buffer->data(), buffer->size(), found);
    if (result != ERANGE || buffer->size() >= (size_t{1} << 20)) return result;
    buffer->resize(buffer->size() * 2);
  }
}

std::string describe(const Identity& identity) {
  std::string text;
  if (identity.uid) text = fmt::format("user {} (uid {})", identity.user, *identity.uid);
  if (identity.gid) {
    if (!text.empty()) text += ", ";
    text += fmt::format("group {} (gid {})", identity.group, *identity.gid);
  }
  return text;
}

std::string currentUser() {
  uid_t uid = geteuid();
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer;
  lookUp<passwd>([&](passwd* e, char* b, size_t n, passwd** f) { return getpwuid_r(uid, e, b, n, f); }, &entry,
                 &buffer, &found);
  return found ? fmt::format("{} (uid {})", found->pw_name, uid) : fmt::format("uid {}", uid);
}

std::string failed(const char* step) { return fmt::format("{}: {}", step, std::strerror(errno)); }

// Not root: only "already that user and group" is accepted.
bool alreadyIdentity(const Identity& identity) {
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  getresuid(&ruid, &euid, &suid);
  getresgid(&rgid, &egid, &sgid);
  bool user = !identity.uid || (ruid == *identity.uid && euid == *identity.uid && suid == *identity.uid);
  bool group = !identity.gid || (rgid == *identity.gid && egid == *identity.gid && sgid == *identity.gid);
  return user && group;
}

// After the switch: every id is the new one, no supplementary group is
// left, and root is out of reach.
std::string verify(const Identity& identity) {
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  if (getresuid(&ruid, &euid, &suid) != 0) return failed("getresuid");
  if (getresgid(&rgid, &egid, &sgid) != 0) return failed("getresgid");
  if (identity.uid && (ruid != *identity.uid || euid != *identity.uid || suid != *identity.uid))
    return fmt::format("uids are {}/{}/{} (real/effective/saved) after setresuid({})", ruid, euid, suid,
                       *identity.uid);
  if (identity.gid && (rgid != *identity.gid || egid != *identity.gid || sgid != *identity.gid))
    return fmt::format("gids are {}/{}/{} (real/effective/saved) after setresgid({})", rgid, egid, sgid,
                       *identity.gid);
  int groups = getgroups(0, nullptr);
  if (groups != 0) return fmt::format("{} supplementary groups left after setgroups(0)", groups);
  if (identity.uid && *identity.uid != 0) {
    if (setuid(0) == 0) return "setuid(0) succeeded after the switch: root could be regained";
    if (errno != EPERM) return failed("setuid(0) after the switch failed, but not with EPERM");
  }
  return {};
}

}  // namespace

std::optional<Identity> resolveIdentity(const config::Config& config, std::string* whyNot) {
  const config::Global& global = config.global;
  auto at = [&](config::Position position, std::string message) {
    return config::formatError({config.sourceName, position.line, position.column, std::move(message)});
  };
  Identity identity;
  std::vector<char> buffer;
  if (!global.user.empty()) {
    passwd entry{};
    passwd* found = nullptr;
    int result = lookUp<passwd>(
        [&](passwd* e, char* b, size_t n, passwd** f) { return getpwnam_r(global.user.c_str(), e, b, n, f); },
        &entry, &buffer, &found);
    if (!found) {
      *whyNot = at(global.userPosition,
                   result != 0 && result != ENOENT
                       ? fmt::format("user \"{}\": cannot look it up: {}", config::printable(global.user),
                                     std::strerror(result))
                       : fmt::format("user \"{}\": no such user", config::printable(global.user)));
      return std::nullopt;
    }
    identity.uid = found->pw_uid;
    identity.gid = found->pw_gid;
    identity.user = global.user;
  }
  if (!global.group.empty()) {
    group entry{};
    group* found = nullptr;
    int result = lookUp<group>(
        [&](group* e, char* b, size_t n, group** f) { return getgrnam_r(global.group.c_str(), e, b, n, f); },
        &entry, &buffer, &found);
    if (!found) {
      *whyNot = at(global.groupPosition,
                   result != 0 && result != ENOENT
                       ? fmt::format("group \"{}\": cannot look it up: {}", config::printable(global.group),
                                     std::strerror(result))
                       : fmt::format("group \"{}\": no such group", config::printable(global.group)));
      return std::nullopt;
    }
    identity.gid = found->gr_gid;
    identity.group = global.group;
  } else if (identity.gid) {
    group entry{};
    group* found = nullptr;
    gid_t gid = *identity.gid;
    lookUp<group>([&](group* e, char* b, size_t n, group** f) { return getgrgid_r(gid, e, b, n, f); }, &entry,
                  &buffer, &found);
    identity.group = found ? found->gr_name : std::to_string(gid);
  }
  return identity;
}

bool becomeIdentity(const Identity& identity, std::string* whyNot) {
  if (!identity.wanted()) {
    if (geteuid() == 0)
      log::warn("running as root: set [global] user (and group) so that ringlb drops root once its listeners "
                "are bound");
    return true;
  }
  if (geteuid() != 0) {
    if (alreadyIdentity(identity)) {
      log::info("[global] user/group: already running as {}", describe(identity));
      return true;
    }
    *whyNot = fmt::format("cannot switch to {}: ringlb runs as {}, not root; start it as root or as that user",
                          describe(identity), currentUser());
    return false;
  }
  // Groups first: once the uid is not 0 they can no longer be changed.
  if (setgroups(0, nullptr) != 0) {
    *whyNot = failed("cannot drop supplementary groups: setgroups");
    return false;
  }
  if (identity.gid && setresgid(*identity.gid, *identity.gid, *identity.gid) != 0) {
    *whyNot = fmt::format("cannot switch to group {} (gid {}): setresgid: {}", identity.group, *identity.gid,
                          std::strerror(errno));
    return false;
  }
  if (identity.uid && setresuid(*identity.uid, *identity.uid, *identity.uid) != 0) {
    *whyNot = fmt::format("cannot switch to user {} (uid {}): setresuid: {}", identity.user, *identity.uid,
                          std::strerror(errno));
    return false;
  }
  if (std::string problem = verify(identity); !problem.empty()) {
    *whyNot = "privilege drop not complete: " + problem;
    return false;
  }
  if (identity.uid) config::setRunningAs(identity.user);
  log::info("running as {}, no supplementary groups", describe(identity));
  if (!identity.uid || *identity.uid == 0)
    log::warn("[global] {}: the process keeps root's uid", identity.uid ? "user is root" : "group without user");
  return true;
}

}  // namespace lb
