#pragma once
// Members written as one line each, for unit tests that build pools
// without a config file.

#include <string>
#include <vector>

#include "config/config.h"

namespace lb {

struct MemberLine {
  std::string name;
  std::string address;  // "ip:port"; must parse
  int weight = 1;
  bool backup = false;
};

inline std::vector<config::Member> membersOf(const std::vector<MemberLine>& lines) {
  std::vector<config::Member> members;
  for (const MemberLine& line : lines) {
    config::Member m;
    m.name = line.name;
    std::string why;
    m.address = *config::parseAddress(line.address, &why);
    m.weight = line.weight;
    m.backup = line.backup;
    members.push_back(m);
  }
  return members;
}

}  // namespace lb
