#include "lb/discovery/discovery.h"
