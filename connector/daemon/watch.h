/*
 * watch.h - the sync engine's adapters as the daemon lets it see them:
 * the same tables, with the device read and the upload passed through a
 * thin layer that reports progress (progress.h) and holds a stop request
 * while an upload batch is in flight, for [connector] stop_timeout, so a
 * SIGTERM lets the batch finish and its acknowledgement be recorded
 * instead of being cut off and rolled back.
 *
 * Must never: change what the adapters are given or what they return, or
 * keep a stop request held outside one batch.
 */
#ifndef CMB_WATCH_H
#define CMB_WATCH_H

#include "connector/engine/sync.h"

/*
 * Points env's site and tenant tables at watched copies of them (st
 * pointers are left alone). One env is watched at a time in a process:
 * the copies are rebuilt for each call.
 */
void cmb_watch_sync_env(struct cmb_sync_env *env);

#endif
