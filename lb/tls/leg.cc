#include "lb/tls/leg.h"

namespace lb::tls {}  // namespace lb::tls
