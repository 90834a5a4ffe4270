/* config_diff: which settings a reload cannot apply. A running daemon
 * applies log.level on SIGHUP; every other key needs a restart, and a
 * reload that changed one says so instead of half-applying it. */
#ifndef PARTISAN_CONFIG_DIFF_H
#define PARTISAN_CONFIG_DIFF_H

#include "config.h"

/* Calls changed(ctx, key) for each restart-only setting (or group of
 * settings, named by section) that differs between running and fresh. */
void config_restart_changes(const struct config *running, const struct config *fresh,
                            void (*changed)(void *ctx, const char *key), void *ctx);

#endif
