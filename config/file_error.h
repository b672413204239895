#pragma once
// How a file that could not be opened or read is described, the same way by
// every reader (the config file, certificates and keys, the token file, the
// access log). After the process dropped root ([global] user), a reload or a
// log reopen reads as that user: a refusal then names the user, so the fix
// (make the file readable by it) is in the message.

#include <string>

namespace config {

// Called once the process runs as `user` for good (lb/privileges).
void setRunningAs(std::string user);

// strerror(error), except EACCES after setRunningAs:
// "permission denied (running as USER)".
std::string fileErrorText(int error);

}  // namespace config
