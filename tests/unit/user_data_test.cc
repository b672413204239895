#include "lb/ring/user_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace lb {
namespace {

TEST(UserData, RoundTripsEveryOperation) {
  for (uint8_t op = 1; op < static_cast<uint8_t>(Op::Count); ++op) {
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
  EXPECT_EQ(decode(encode(UserData{Op::Send1, kMaxSlot, 0xffffffffu})).op, Op::Send1);
}

TEST(UserData, IgnoreIsZeroSoAnUnsetUserDataIsHarmless) {
  EXPECT_EQ(encode(UserData{}), 0u);
  EXPECT_EQ(encode(UserData{Op::Ignore, 5, 6}), 0u);  // a cancel carries nothing
  EXPECT_EQ(decode(0).op, Op::Ignore);
}

TEST(UserData, GenerationDistinguishesLivesOfOneSlot) {
  uint64_t first = encode({Op::Connect, 7, 1});
  uint64_t second = encode({Op::Connect, 7, 2});
  EXPECT_NE(first, second);
  EXPECT_EQ(decode(first).slot, decode(second).slot);
}

TEST(UserData, WorkerOperationsCarryTheirOwner) {
  EXPECT_EQ(ring::unpack(encode({Op::Accept, 3, 0})).owner, ring::Owner::WorkerListener);
  EXPECT_EQ(ring::unpack(encode({Op::AcceptRetry, 3, 0})).owner, ring::Owner::WorkerListener);
  EXPECT_EQ(ring::unpack(encode({Op::Wake, 0, 0})).owner, ring::Owner::WorkerTimer);
  EXPECT_EQ(ring::unpack(encode({Op::Tick, 0, 0})).owner, ring::Owner::WorkerTimer);
  for (Op op : {Op::Connect, Op::ConnectTimeout, Op::Recv0, Op::Send1, Op::Continue0, Op::PollWritable1})
    EXPECT_EQ(ring::unpack(encode({op, 9, 9})).owner, ring::Owner::WorkerSession);
}

}  // namespace

namespace ring {
namespace {

TEST(RingCodec, RoundTripsEveryOwnerAtTheFieldLimits) {
  for (uint8_t owner = 0; owner < static_cast<uint8_t>(Owner::Count); ++owner) {
    for (Tag tag : {Tag{static_cast<Owner>(owner), 0, 0, 0},
                    Tag{static_cast<Owner>(owner), kMaxOp, kMaxSlot, 0xffffffffu},
                    Tag{static_cast<Owner>(owner), 1, 1, 1}}) {
      EXPECT_EQ(unpack(pack(tag)), tag);
    }
  }
}

TEST(RingCodec, ValuesBeyondAFieldAreCutNotSpilled) {
  Tag tag = unpack(pack(Tag{Owner::Admin, static_cast<uint8_t>(kMaxOp + 1), kMaxSlot + 1, 7}));
  EXPECT_EQ(tag.owner, Owner::Admin);
  EXPECT_EQ(tag.op, 0);
  EXPECT_EQ(tag.slot, 0u);
  EXPECT_EQ(tag.generation, 7u);
  tag = unpack(pack(Tag{Owner::WorkerSession, 0, kMaxSlot, 0}));
  EXPECT_EQ(tag.owner, Owner::WorkerSession);
  EXPECT_EQ(tag.op, 0);
}

// Owners sharing a ring (the control thread's: signal, tick, admin, prober)
// never produce the same user_data, and nothing another owner encoded is
// ever taken for a worker's work.
TEST(RingCodec, OwnersNeverShareAValue) {
  std::set<uint64_t> seen;
  for (uint8_t owner = 0; owner < static_cast<uint8_t>(Owner::Count); ++owner)
    EXPECT_TRUE(seen.insert(pack(Tag{static_cast<Owner>(owner), 1, 2, 3})).second);
  for (Owner other : {Owner::ControlSignal, Owner::ControlTick, Owner::Admin, Owner::Prober}) {
    for (uint8_t op = 0; op <= kMaxOp; ++op) {
      EXPECT_EQ(decode(pack(Tag{other, op, 5, 6})).op, Op::Ignore);
    }
  }
  // An op under the wrong worker owner is not trusted either.
  EXPECT_EQ(decode(pack(Tag{Owner::WorkerSession, static_cast<uint8_t>(Op::Accept), 1, 0})).op, Op::Ignore);
  EXPECT_EQ(decode(pack(Tag{Owner::WorkerListener, static_cast<uint8_t>(Op::Recv0), 1, 0})).op, Op::Ignore);
}

TEST(RingCodec, ProbeDataRoundTripsAtItsLimits) {
  for (ProbeData data : {ProbeData{0, 0, 0, 0}, ProbeData{UINT16_MAX, kMaxOp, kMaxSlot, UINT16_MAX},
                         ProbeData{1, 2, 3, 4}}) {
    uint64_t raw = encodeProbe(data);
    EXPECT_EQ(unpack(raw).owner, Owner::Prober);
    EXPECT_EQ(decodeProbe(raw), data);
  }
  // The prober id and the probe generation do not bleed into each other.
  EXPECT_EQ(decodeProbe(encodeProbe(ProbeData{UINT16_MAX, 0, 0, 0})).generation, 0);
  EXPECT_EQ(decodeProbe(encodeProbe(ProbeData{0, 0, 0, UINT16_MAX})).prober, 0);
}

// Bug 12: probe tags cycled through 240 values, so after enough reloads a
// prober retired with a probe still in flight shared its tag with the
// current one and received its completions.
TEST(ProberId, ARetiredProberKeepsItsIdForAsLongAsItLives) {
  uint16_t next = 0;
  std::vector<uint16_t> alive;
  auto inUse = [&](uint16_t id) { return std::find(alive.begin(), alive.end(), id) != alive.end(); };
  uint16_t stuck = allocateProberId(&next, inUse);  // retired, never drains
  alive.push_back(stuck);
  uint16_t current = allocateProberId(&next, inUse);
  for (int reload = 0; reload < 200'000; ++reload) {
    alive.push_back(current);  // the current prober retires ...
    uint16_t fresh = allocateProberId(&next, inUse);
    ASSERT_NE(fresh, stuck) << "after " << reload << " reloads";
    ASSERT_FALSE(inUse(fresh));
    alive.pop_back();  // ... and drains at once, unlike `stuck`
    current = fresh;
  }
}

TEST(ProberId, SkipsEveryIdInUse) {
  uint16_t next = 10;
  std::set<uint16_t> held = {10, 11, 13};
  uint16_t id = allocateProberId(&next, [&](uint16_t candidate) { return held.count(candidate) > 0; });
  EXPECT_EQ(id, 12);
  id = allocateProberId(&next, [&](uint16_t candidate) { return held.count(candidate) > 0; });
  EXPECT_EQ(id, 14);
}

}  // namespace
}  // namespace ring
}  // namespace lb
