#pragma once

#include <sys/socket.h>

#include <string>

namespace lb {

// "127.0.0.1:5555" or "[::1]:5555"; "-" for an address of another family.
std::string formatAddress(const sockaddr_storage& address);

}  // namespace lb
