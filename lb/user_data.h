#pragma once
// Moved to lb/ring/. This forwarding header stays only while lb/session.h
// (owned by another change in flight) still includes the old path; drop it
// once that include says "lb/ring/user_data.h".
#include "lb/ring/user_data.h"
