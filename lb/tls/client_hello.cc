#include "lb/tls/client_hello.h"

namespace lb::tls {}  // namespace lb::tls
