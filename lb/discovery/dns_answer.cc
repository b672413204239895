#include "lb/discovery/dns_answer.h"
