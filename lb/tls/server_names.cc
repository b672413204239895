#include "lb/tls/server_names.h"

namespace lb::tls {}  // namespace lb::tls
