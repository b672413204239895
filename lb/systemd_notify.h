#pragma once
// sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET ("READY=1",
// "RELOADING=1", "STOPPING=1", ...). Does nothing when not run by systemd.

#include <string_view>

namespace lb {

void notifySystemd(std::string_view state);

}  // namespace lb
