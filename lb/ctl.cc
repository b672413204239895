#include "lb/ctl.h"

// Filled in by its helper (issue 14).
