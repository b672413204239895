#pragma once
// Limits that config/ validates and lb/policy/ relies on. Constants only (no
// other include), so that the pure policies can share them without taking on
// the loader: one source for both sides.

namespace config {

// hash_balance_factor: 0 turns bounded loads off; otherwise a member may carry
// this many times its fair share. Below 1 no member could qualify; above 100
// the bound never binds in practice.
inline constexpr double kMinHashBalanceFactor = 1.0;
inline constexpr double kMaxHashBalanceFactor = 100.0;

}  // namespace config
