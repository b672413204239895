#include "lb/edge/source_limits.h"

// Implemented on the source_limits branch (issue 11).
