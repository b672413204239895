#pragma once
// `ringlb --check NEW --against OLD`: what a reload from OLD to NEW would
// change, before it happens.

#include <string>

#include "config/config.h"

namespace lb {

// Every difference config::difference() finds (global and admin keys,
// listeners, pools, their keys, health tables and members), one per line,
// and for consistent_hash pools whose table would change the share of the
// key space whose member would change.
std::string previewReload(const config::Config& before, const config::Config& after);

}  // namespace lb
