#include "lb/history.h"

// Filled in by its helper (issue 14).
