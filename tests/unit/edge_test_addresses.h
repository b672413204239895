#pragma once
// Client addresses for the lb/edge unit tests, from their text.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace edgetest {

inline sockaddr_storage v4(const char* address) {
  sockaddr_storage storage{};
  auto& in = reinterpret_cast<sockaddr_in&>(storage);
  in.sin_family = AF_INET;
  in.sin_port = htons(40000);
  EXPECT_EQ(inet_pton(AF_INET, address, &in.sin_addr), 1) << address;
  return storage;
}

inline sockaddr_storage v6(const char* address) {
  sockaddr_storage storage{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(40000);
  EXPECT_EQ(inet_pton(AF_INET6, address, &in6.sin6_addr), 1) << address;
  return storage;
}

}  // namespace edgetest
