#pragma once
// Fakes for policy tests: member state set by the test, and random sources
// that are either scripted or seeded (never the clock, never the OS).

#include <gtest/gtest.h>

#include <deque>
#include <initializer_list>
#include <string>
#include <vector>

#include "lb/policy/hash.h"
#include "lb/policy/policy.h"

namespace lb::policy::testing {

class FakeMembers final : public MemberState {
 public:
  explicit FakeMembers(size_t count) : up(count, true), active(count, 0) {}
  bool usable(size_t index) const override { return up.at(index); }
  int64_t activeConnections(size_t index) const override { return active.at(index); }

  std::vector<bool> up;
  std::vector<int64_t> active;
};

// Returns the given values in order; running out is a test failure.
class ScriptedRandom final : public Random {
 public:
  ScriptedRandom(std::initializer_list<uint64_t> values) : values_(values) {}
  uint64_t next() override {
    if (values_.empty()) {
      ADD_FAILURE() << "ScriptedRandom ran out of values";
      return 0;
    }
    uint64_t value = values_.front();
    values_.pop_front();
    return value;
  }
  size_t remaining() const { return values_.size(); }

 private:
  std::deque<uint64_t> values_;
};

// splitmix64: a seeded, reproducible stream.
class SplitMix final : public Random {
 public:
  explicit SplitMix(uint64_t seed) : state_(seed) {}
  uint64_t next() override {
    state_ += kGoldenGamma;
    return mix64(state_);
  }

 private:
  uint64_t state_;
};

inline std::vector<MemberSpec> makeMembers(std::initializer_list<uint32_t> weights) {
  std::vector<MemberSpec> members;
  for (uint32_t weight : weights) {
    // Appended rather than "m" + ...: GCC 12 at -O3 warns falsely on that (-Wrestrict).
    std::string name = "m";
    name += std::to_string(members.size());
    members.push_back({name, weight});
  }
  return members;
}

inline std::vector<MemberSpec> makeMembers(size_t count, const std::string& prefix = "member-") {
  std::vector<MemberSpec> members;
  for (size_t i = 0; i < count; ++i) {
    std::string name = prefix;
    name += std::to_string(i);
    members.push_back({name, 1});
  }
  return members;
}

inline PickContext contextFor(const MemberState& state, uint64_t keyHash = 0, uint32_t attempt = 0,
                              Random* random = nullptr) {
  return PickContext{&state, keyHash, attempt, random};
}

}  // namespace lb::policy::testing
