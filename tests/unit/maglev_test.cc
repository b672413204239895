#include "lb/policy/maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

#include "lb/policy/factory.h"
#include "tests/unit/policy_fakes.h"

namespace lb::policy {
namespace {

using testing::contextFor;
using testing::FakeMembers;
using testing::makeMembers;

constexpr size_t kSampleKeys = 100000;

uint64_t sampleKey(size_t i) {
  std::array<uint8_t, 4> address{10, uint8_t(i >> 16), uint8_t(i >> 8), uint8_t(i)};
  return hashClientKey(address);
}

// Owner name of each sampled key, looked up in the table alone.
std::vector<std::string> ownersOf(std::span<const MemberSpec> members, uint32_t tableSize = kDefaultTableSize) {
  MaglevTable table = MaglevTable::build(members, tableSize);
  std::vector<std::string> owners;
  owners.reserve(kSampleKeys);
  for (size_t i = 0; i < kSampleKeys; ++i) owners.push_back(members[table.memberFor(sampleKey(i))].name);
  return owners;
}

TEST(Hash, ValuesArePinnedAcrossBuildsAndPlatforms) {
  // Changing these remaps every client and table: only on purpose. The
  // values were checked against an independent Python version of hashBytes.
  EXPECT_EQ(hashString("", 0), 0x48218226ff3cd4bfu);
  EXPECT_EQ(hashString("orders-1", 0), 0x3953d135052c8589u);
  EXPECT_EQ(hashString("a-member-name-longer-than-16", 7), 0x87d908534532c997u);
  std::array<uint8_t, 4> ipv4{192, 168, 1, 10};
  EXPECT_EQ(hashClientKey(ipv4), 0x4db494d296bed031u);
}

TEST(Hash, SeedsAndLengthsGiveDifferentValues) {
  EXPECT_NE(hashString("orders-1", 1), hashString("orders-1", 2));
  EXPECT_NE(hashString(std::string("a\0", 2), 0), hashString("a", 0));
  EXPECT_NE(hashString("12345678", 0), hashString("123456789", 0));
  std::array<uint8_t, 6> withPort{192, 168, 1, 10, 0x1f, 0x90};
  std::array<uint8_t, 6> otherPort{192, 168, 1, 10, 0x1f, 0x91};
  EXPECT_NE(hashClientKey(withPort), hashClientKey(otherPort));
}

TEST(Maglev, EqualMembersGetFloorOrCeilOfTheirShare) {
  auto members = makeMembers(400);
  MaglevTable table = MaglevTable::build(members, kDefaultTableSize);
  std::vector<uint32_t> counts = table.slotCounts();
  const uint32_t floor = kDefaultTableSize / 400;
  for (uint32_t count : counts) EXPECT_TRUE(count == floor || count == floor + 1) << count;
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), uint64_t{0}), kDefaultTableSize);
}

TEST(Maglev, InputOrderDoesNotMatter) {
  auto members = makeMembers(50);
  for (size_t i = 0; i < members.size(); ++i) members[i].weight = 1 + i % 4;
  MaglevTable reference = MaglevTable::build(members);
  std::mt19937_64 shuffler(1);
  for (int round = 0; round < 3; ++round) {
    auto shuffled = members;
    std::shuffle(shuffled.begin(), shuffled.end(), shuffler);
    MaglevTable table = MaglevTable::build(shuffled);
    for (uint32_t slot = 0; slot < table.size(); ++slot) {
      ASSERT_EQ(shuffled[table.memberAt(slot)].name, members[reference.memberAt(slot)].name) << slot;
    }
  }
}

TEST(Maglev, TableIsPinned) {
  // Also checked against an independent Python version of the population.
  MaglevTable table = MaglevTable::build(makeMembers({1, 2, 3}), 101);
  std::string prefix;
  for (uint32_t slot = 0; slot < 24; ++slot) prefix += char('0' + table.memberAt(slot));
  EXPECT_EQ(prefix, "222221221221221221221201");
}

class MaglevDisruption : public ::testing::TestWithParam<size_t> {};

TEST_P(MaglevDisruption, RemovingOneMovesLittleMoreThanItsKeys) {
  const size_t n = GetParam();
  auto members = makeMembers(n);
  auto fewer = members;
  const std::string removed = members[n / 2].name;
  fewer.erase(fewer.begin() + n / 2);
  std::vector<std::string> before = ownersOf(members);
  std::vector<std::string> after = ownersOf(fewer);
  size_t moved = 0, bystanders = 0, bystandersMoved = 0;
  for (size_t i = 0; i < kSampleKeys; ++i) {
    moved += before[i] != after[i];
    if (before[i] == removed) continue;
    ++bystanders;
    bystandersMoved += before[i] != after[i];
  }
  EXPECT_LE(double(moved) / kSampleKeys, 1.0 / n + 0.02);
  EXPECT_LE(double(bystandersMoved) / bystanders, 0.02);
}

TEST_P(MaglevDisruption, AddingOneMovesLittleMoreThanItsShare) {
  const size_t n = GetParam();
  auto members = makeMembers(n);
  auto more = members;
  more.push_back({"newcomer", 1});
  std::vector<std::string> before = ownersOf(members);
  std::vector<std::string> after = ownersOf(more);
  size_t moved = 0;
  for (size_t i = 0; i < kSampleKeys; ++i) moved += before[i] != after[i];
  EXPECT_LE(double(moved) / kSampleKeys, 1.0 / n + 0.02);
}

INSTANTIATE_TEST_SUITE_P(Sizes, MaglevDisruption, ::testing::Values(size_t{10}, size_t{100}));

TEST(Maglev, SlotSharesFollowWeights) {
  std::vector<MemberSpec> members{{"light", 1}, {"middle", 2}, {"heavy", 3}};
  std::vector<uint32_t> counts = MaglevTable::build(members).slotCounts();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(double(counts[i]) / kDefaultTableSize, members[i].weight / 6.0, 0.01) << members[i].name;
  }
}

TEST(Maglev, HeavierMemberGetsMoreSlotsAmongMany) {
  auto members = makeMembers(100);
  members[7].weight = 2;
  std::vector<uint32_t> counts = MaglevTable::build(members).slotCounts();
  EXPECT_NEAR(counts[7], 2 * counts[8], 2);
}

TEST(Maglev, SizeValidation) {
  EXPECT_FALSE(isPrime(0));
  EXPECT_FALSE(isPrime(1));
  EXPECT_TRUE(isPrime(2));
  EXPECT_TRUE(isPrime(3));
  EXPECT_FALSE(isPrime(25));
  EXPECT_FALSE(isPrime(65536));
  EXPECT_TRUE(isPrime(65537));
  EXPECT_TRUE(isPrime(kMaxTableSize));
  EXPECT_TRUE(isPrime(4294967291u));
  EXPECT_FALSE(isPrime(4294967297u));  // 641 x 6700417
  EXPECT_EQ(nextPrime(65536), 65537u);
  EXPECT_EQ(validateTableSize(65537, 10), "");
  EXPECT_EQ(validateTableSize(65537, 655), "");
  EXPECT_EQ(validateTableSize(65536, 10), "table_size 65536 is not prime (the next prime is 65537)");
  EXPECT_EQ(validateTableSize(65537, 1000),
            "table_size 65537 is too small for 1000 members: it must be a prime >= 100 x members, e.g. 100003");
  EXPECT_NE(validateTableSize(uint64_t{1} << 40, 1).find("too large"), std::string::npos);
  EXPECT_NE(validateTableSize(kMaxTableSize, 200000).find("too many members"), std::string::npos);
  EXPECT_EQ(validateBalanceFactor(0), "");
  EXPECT_EQ(validateBalanceFactor(1.25), "");
  EXPECT_EQ(validateBalanceFactor(0.5), "hash_balance_factor must be 0 (off) or from 1 to 100, not 0.5");
  EXPECT_NE(validateBalanceFactor(std::nan("")), "");
  EXPECT_THROW(MaglevTable::build(makeMembers(3), 65536), std::invalid_argument);
  EXPECT_THROW(ConsistentHash(makeMembers(3), 101, 0.5), std::invalid_argument);
}

TEST(ConsistentHash, SameKeySameMember) {
  auto members = makeMembers(10);
  ConsistentHash policy(members, kDefaultTableSize, 0);
  FakeMembers state(10);
  for (size_t i = 0; i < 1000; ++i) {
    uint64_t key = sampleKey(i);
    EXPECT_EQ(policy.pick(contextFor(state, key)), policy.table().memberFor(key));
  }
}

TEST(ConsistentHash, DownMemberMovesOnlyItsOwnKeys) {
  auto members = makeMembers(10);
  ConsistentHash policy(members, kDefaultTableSize, 0);
  FakeMembers state(10);
  std::vector<size_t> before;
  for (size_t i = 0; i < kSampleKeys; ++i) before.push_back(policy.pick(contextFor(state, sampleKey(i))).value());
  state.up[3] = false;
  std::vector<size_t> movedTo(10, 0);
  for (size_t i = 0; i < kSampleKeys; ++i) {
    size_t now = policy.pick(contextFor(state, sampleKey(i))).value();
    if (before[i] == 3) ++movedTo[now];
    else ASSERT_EQ(now, before[i]) << "key " << i;
  }
  EXPECT_EQ(movedTo[3], 0u);
  // The orphaned keys spread over the others rather than landing on one.
  for (size_t m = 0; m < 10; ++m) {
    if (m == 3) continue;
    EXPECT_GT(movedTo[m], kSampleKeys / 10 / 9 / 2) << m;
  }
}

TEST(ConsistentHash, RetryPerturbsTheHash) {
  auto members = makeMembers(10);
  ConsistentHash policy(members, kDefaultTableSize, 0);
  FakeMembers state(10);
  size_t different = 0;
  for (size_t i = 0; i < kSampleKeys; ++i) {
    uint64_t key = sampleKey(i);
    size_t first = policy.pick(contextFor(state, key, 0)).value();
    size_t retry = policy.pick(contextFor(state, key, 1)).value();
    EXPECT_EQ(policy.pick(contextFor(state, key, 1)), retry);  // deterministic
    different += first != retry;
  }
  EXPECT_GT(double(different) / kSampleKeys, 0.85);
}

TEST(ConsistentHash, RetryAfterFailureLandsWhereADownMemberWouldSendTheKey) {
  auto members = makeMembers(10);
  ConsistentHash policy(members, kDefaultTableSize, 0);
  FakeMembers state(10);
  for (size_t i = 0; i < 1000; ++i) {
    uint64_t key = sampleKey(i);
    size_t first = policy.pick(contextFor(state, key, 0)).value();
    state.up[first] = false;  // tried by this connection
    size_t retry = policy.pick(contextFor(state, key, 1)).value();
    size_t downRoute = policy.pick(contextFor(state, key, 0)).value();
    EXPECT_NE(retry, first);
    EXPECT_EQ(retry, downRoute);
    state.up[first] = true;
  }
}

TEST(ConsistentHash, FindsTheLastUsableMemberByScanning) {
  auto members = makeMembers(1000);
  ConsistentHash policy(members, 100003, 0);
  FakeMembers state(1000);
  std::fill(state.up.begin(), state.up.end(), false);
  state.up[617] = true;  // 64 probes miss it for ~94% of keys
  for (size_t i = 0; i < 200; ++i) EXPECT_EQ(policy.pick(contextFor(state, sampleKey(i))), 617u);
  state.up[617] = false;
  EXPECT_EQ(policy.pick(contextFor(state, sampleKey(0))), std::nullopt);
}

TEST(ConsistentHash, MemberOwningNoSlotIsStillReachable) {
  // 101 slots, weight 1 against two of 256: "tiny" claims no slot.
  std::vector<MemberSpec> members{{"big-a", 256}, {"big-b", 256}, {"tiny", 1}};
  ConsistentHash policy(members, 101, 0);
  ASSERT_EQ(policy.table().slotCounts()[2], 0u);
  FakeMembers state(3);
  state.up = {false, false, true};
  EXPECT_EQ(policy.pick(contextFor(state, 12345)), 2u);
}

TEST(ConsistentHash, MembersOwningNoSlotAreTriedInNameOrder) {
  // Two hosts list the members in opposite orders. With the slot owners
  // down, only the two slotless members are left: both hosts must pick the
  // same one, whatever the order in their files.
  std::vector<MemberSpec> members{{"big-a", 256}, {"big-b", 256}, {"tiny-x", 1}, {"tiny-y", 1}};
  std::vector<MemberSpec> reversed(members.rbegin(), members.rend());
  ConsistentHash first(members, 101, 0);
  ConsistentHash second(reversed, 101, 0);
  ASSERT_EQ(first.table().slotCounts()[2] + first.table().slotCounts()[3], 0u);
  FakeMembers state(4);
  state.up = {false, false, true, true};
  FakeMembers reversedState(4);
  reversedState.up = {true, true, false, false};
  for (uint64_t key : {uint64_t{1}, uint64_t{12345}, sampleKey(7)}) {
    auto picked = first.pick(contextFor(state, key));
    auto reversedPicked = second.pick(contextFor(reversedState, key));
    ASSERT_TRUE(picked && reversedPicked);
    EXPECT_EQ(members[*picked].name, "tiny-x");
    EXPECT_EQ(reversed[*reversedPicked].name, "tiny-x");
  }
}

TEST(ConsistentHash, NoMembersGivesNothing) {
  ConsistentHash policy(std::span<const MemberSpec>{}, kDefaultTableSize, 1.25);
  FakeMembers state(0);
  EXPECT_EQ(policy.pick(contextFor(state, 1)), std::nullopt);
  EXPECT_EQ(policy.table().size(), 0u);
}

TEST(ConsistentHash, BoundedLoadsKeepEveryMemberUnderTheBound) {
  auto members = makeMembers(10);
  ConsistentHash policy(members, kDefaultTableSize, 1.25);
  FakeMembers state(10);
  int64_t total = 0;
  for (size_t i = 0; i < 10000; ++i) {
    // Few distinct keys: plain hashing would pile them onto few members.
    size_t member = policy.pick(contextFor(state, sampleKey(i % 7))).value();
    ++state.active[member];
    ++total;
    const int64_t bound = (5 * total + 4 * 10 - 1) / (4 * 10);  // ceil(1.25 * total / 10)
    ASSERT_LE(state.active[member], bound) << "connection " << i;
  }
  for (int64_t active : state.active) EXPECT_LE(active, 1250);
}

TEST(ConsistentHash, BoundedLoadsRespectWeights) {
  std::vector<MemberSpec> members{{"a", 1}, {"b", 3}};
  ConsistentHash policy(members, kDefaultTableSize, 1.0);
  FakeMembers state(2);
  for (size_t i = 0; i < 4000; ++i) ++state.active[policy.pick(contextFor(state, sampleKey(i % 3))).value()];
  EXPECT_EQ(state.active, (std::vector<int64_t>{1000, 3000}));
}

TEST(ConsistentHash, BoundedLoadsLeaveBalancedKeysAlone) {
  auto members = makeMembers(10);
  ConsistentHash bounded(members, kDefaultTableSize, 1.25);
  FakeMembers state(10);
  std::fill(state.active.begin(), state.active.end(), 100);
  for (size_t i = 0; i < 1000; ++i) {
    uint64_t key = sampleKey(i);
    EXPECT_EQ(bounded.pick(contextFor(state, key)), bounded.table().memberFor(key));
  }
}

TEST(Factory, BuildsEveryKindByName) {
  auto members = makeMembers(4);
  FakeMembers state(4);
  testing::SplitMix random(1);
  for (std::string_view name : {"round_robin", "least_conn", "consistent_hash", "random_two"}) {
    std::optional<Kind> kind = kindFromString(name);
    ASSERT_TRUE(kind) << name;
    EXPECT_EQ(toString(*kind), name);
    std::unique_ptr<Policy> policy = makePolicy(*kind, members, Options{101, 0});
    ASSERT_NE(policy, nullptr);
    EXPECT_LT(policy->pick(contextFor(state, 99, 0, &random)).value(), 4u);
  }
  EXPECT_EQ(kindFromString("fastest"), std::nullopt);
  EXPECT_THROW(makePolicy(Kind::ConsistentHash, members, Options{100, 0}), std::invalid_argument);
}

// A pool whose members all come from DNS has none until it answers: its
// table has no slots, and nothing may divide by their number.
TEST(Maglev, AnEmptyTableNamesNoMember) {
  MaglevTable table = MaglevTable::build(std::span<const MemberSpec>{}, 1009);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.memberCount(), 0u);
  EXPECT_TRUE(table.slotCounts().empty());
  EXPECT_EQ(table.memberFor(12345), MaglevTable::kNoMember);
  EXPECT_EQ(table.memberFor(0), MaglevTable::kNoMember);
}

TEST(ConsistentHash, NoMembersGivesNothingOnAnyAttemptOrContext) {
  auto table = std::make_shared<const MaglevTable>(MaglevTable::build(std::span<const MemberSpec>{}, 1009));
  for (double factor : {0.0, 1.25}) {
    ConsistentHash policy(table, factor);
    FakeMembers none(0);
    for (uint32_t attempt = 0; attempt < 3; ++attempt)
      EXPECT_EQ(policy.pick(contextFor(none, 0xdeadbeef, attempt)), std::nullopt);
    EXPECT_EQ(policy.pick(PickContext{}), std::nullopt);
  }
}

TEST(Factory, EveryKindWithNoMembersGivesNothing) {
  FakeMembers none(0);
  testing::ScriptedRandom random{};
  for (Kind kind : {Kind::RoundRobin, Kind::LeastConn, Kind::ConsistentHash, Kind::RandomTwo}) {
    std::unique_ptr<Policy> policy = makePolicy(kind, std::span<const MemberSpec>{}, Options{101, 0});
    ASSERT_NE(policy, nullptr) << toString(kind);
    EXPECT_EQ(policy->pick(contextFor(none, 7, 0, &random)), std::nullopt) << toString(kind);
    EXPECT_EQ(policy->pick(contextFor(none, 7, 2, &random)), std::nullopt) << toString(kind);
  }
}

}  // namespace
}  // namespace lb::policy
