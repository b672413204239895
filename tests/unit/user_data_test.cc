#include "lb/user_data.h"

#include <gtest/gtest.h>

namespace lb {
namespace {

TEST(UserData, RoundTripsEveryOperation) {
  for (uint8_t op = 0; op < static_cast<uint8_t>(Op::Count); ++op) {
    UserData data{static_cast<Op>(op), 12345, 0xdeadbeef};
    EXPECT_EQ(decode(encode(data)), data);
  }
}

TEST(UserData, ExtremesDoNotBleedIntoNeighbouringFields) {
  UserData data{Op::Continue1, kMaxSlot, 0xffffffffu};
  EXPECT_EQ(decode(encode(data)), data);
  UserData zero{Op::Accept, 0, 0};
  EXPECT_EQ(decode(encode(zero)), zero);
  EXPECT_EQ(decode(encode(UserData{Op::Accept, kMaxSlot, 0})).generation, 0u);
  EXPECT_EQ(decode(encode(UserData{Op::Accept, 0, 0xffffffffu})).slot, 0u);
}

TEST(UserData, IgnoreIsZeroSoAnUnsetUserDataIsHarmless) {
  EXPECT_EQ(encode(UserData{}), 0u);
  EXPECT_EQ(decode(0).op, Op::Ignore);
}

TEST(UserData, GenerationDistinguishesLivesOfOneSlot) {
  uint64_t first = encode({Op::Connect, 7, 1});
  uint64_t second = encode({Op::Connect, 7, 2});
  EXPECT_NE(first, second);
  EXPECT_EQ(decode(first).slot, decode(second).slot);
}

}  // namespace
}  // namespace lb
