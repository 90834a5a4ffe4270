/* scenarios_hyparview: the simulator's HyParView + Plumtree scenarios
 * (test/sim/scenarios_hyparview.c), run by the sim's main. */
#ifndef PARTISAN_SCENARIOS_HYPARVIEW_H
#define PARTISAN_SCENARIOS_HYPARVIEW_H

#include <stdbool.h>
#include <stdint.h>

/* Runs every HyParView scenario (only: just the one so named) from seed,
 * printing one PASS or FAIL line each (and a "reproduce:" line on failure),
 * and adds to *passed and *failed. Returns false if only names none. */
bool hyparview_scenarios_run(uint64_t seed, const char *only, bool verbose, int *passed, int *failed);

/* The scenario names, space-separated, for usage messages. */
const char *hyparview_scenario_names(void);

#endif
