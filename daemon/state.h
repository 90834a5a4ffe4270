/* state: what survives a restart, in node.state_dir.
 *
 *   incarnation   this node's incarnation of its last run (decimal)
 *   members       the member table: "name address incarnation alive|left" lines
 *
 * Written to a temporary file, fsynced and renamed, so a crash leaves the old
 * file or the new one, never half of one. A missing or corrupt file is
 * logged and treated as empty. With no state_dir nothing is written and the
 * incarnation comes from the wall clock alone. */
#ifndef PARTISAN_STATE_H
#define PARTISAN_STATE_H

#include <stdint.h>

#include "membership.h"

/* The incarnation for this run: greater than the stored one and not below
 * now_ms (wall-clock milliseconds), so it grows across restarts even when
 * the state directory was lost. Stores it when state_dir is set; returns 0
 * on a write failure (logged), which the caller treats as fatal. */
uint64_t state_next_incarnation(const char *state_dir, uint64_t now_ms);

/* Loads the stored member table into *m (which must be initialised).
 * Returns the number of entries loaded (0 when none or corrupt). */
int state_load_members(const char *state_dir, struct membership *m);

/* Stores the member table as it is. The daemon's core starts from the
 * stored table, so a short run that knew nobody still writes back what an
 * earlier run knew; what expired or was forgotten stays gone.
 * Returns 0, or -1 (logged). */
int state_save_members(const char *state_dir, const struct membership *m);

#endif
