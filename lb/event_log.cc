#include "lb/event_log.h"

// Filled in by its helper (issue 14).
