/*
 * counters.c - the process-wide hot-path counters declared in common.h.
 */
#include "common.h"

uint64_t zm_counters[ZM_CNT_COUNT_];
