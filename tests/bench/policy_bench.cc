// pick() cost per policy and Maglev table build time, for 10, 100 and 1000
// members. Built when Google Benchmark is found; not run by `meson test`.
// Run: build/tests/policy_bench [--benchmark_filter=Maglev]

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "lb/policy/factory.h"
#include "lb/policy/hash.h"
#include "lb/policy/maglev.h"

namespace lb::policy {
namespace {

// Every member up, with varied counts, behind the same virtual calls the
// pool's state will make.
class BenchState final : public MemberState {
 public:
  explicit BenchState(size_t count) : active_(count) {
    for (size_t i = 0; i < count; ++i) active_[i] = static_cast<int64_t>(mix64(i) % 100);
  }
  bool usable(size_t) const override { return true; }
  int64_t activeConnections(size_t index) const override { return active_[index]; }

 private:
  std::vector<int64_t> active_;
};

class BenchRandom final : public Random {
 public:
  uint64_t next() override { return mix64(state_ += kGoldenGamma); }

 private:
  uint64_t state_ = 1;
};

std::vector<MemberSpec> members(size_t count) {
  std::vector<MemberSpec> specs;
  for (size_t i = 0; i < count; ++i) {
    std::string name = "10.0.";
    name += std::to_string(i);
    name += ":8080";
    specs.push_back({name, uint32_t(1 + i % 3)});
  }
  return specs;
}

void pickLoop(benchmark::State& state, Kind kind, double balanceFactor) {
  const size_t count = static_cast<size_t>(state.range(0));
  auto specs = members(count);
  // 100003 keeps the table >= 100 slots per member at 1000 members.
  std::unique_ptr<Policy> policy = makePolicy(kind, specs, Options{100003, balanceFactor});
  BenchState live(count);
  BenchRandom random;
  PickContext context{&live, 0, 0, &random};
  uint64_t key = 0;
  for (auto _ : state) {
    context.keyHash = mix64(++key);
    benchmark::DoNotOptimize(policy->pick(context));
  }
}

void BM_PickRoundRobin(benchmark::State& state) { pickLoop(state, Kind::RoundRobin, 0); }
void BM_PickLeastConn(benchmark::State& state) { pickLoop(state, Kind::LeastConn, 0); }
void BM_PickRandomTwo(benchmark::State& state) { pickLoop(state, Kind::RandomTwo, 0); }
void BM_PickConsistentHash(benchmark::State& state) { pickLoop(state, Kind::ConsistentHash, 0); }
void BM_PickConsistentHashBounded(benchmark::State& state) { pickLoop(state, Kind::ConsistentHash, 1.25); }

void BM_MaglevBuild(benchmark::State& state) {
  auto specs = members(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(MaglevTable::build(specs, kDefaultTableSize));
  state.SetLabel("M=65537");
}

void BM_HashClientKey(benchmark::State& state) {
  uint8_t key[18] = {0x20, 0x01, 0x0d, 0xb8};
  for (auto _ : state) {
    ++key[15];
    benchmark::DoNotOptimize(hashClientKey(key));
  }
}

BENCHMARK(BM_PickRoundRobin)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_PickLeastConn)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_PickRandomTwo)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_PickConsistentHash)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_PickConsistentHashBounded)->Arg(10)->Arg(100)->Arg(1000);
BENCHMARK(BM_MaglevBuild)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_HashClientKey);

}  // namespace
}  // namespace lb::policy

BENCHMARK_MAIN();
