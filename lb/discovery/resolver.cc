#include "lb/discovery/resolver.h"
