#pragma once
// `ringlb --check NEW --against OLD`: what a reload from OLD to NEW would
// change, before it happens.

#include <string>

#include "config/config.h"

namespace lb {

// Listeners and pools added and removed; per pool, members added, removed
// and re-weighted, and for consistent_hash pools the share of the key space
// whose member would change.
std::string previewReload(const config::Config& before, const config::Config& after);

}  // namespace lb
