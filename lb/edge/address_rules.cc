#include "lb/edge/address_rules.h"

// Implemented on the address_rules branch (issue 11).
