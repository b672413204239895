#include "lb/tls/context.h"

namespace lb::tls {}  // namespace lb::tls
