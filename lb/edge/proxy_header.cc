#include "lb/edge/proxy_header.h"

// Implemented on the proxy_header branch (issue 11).
