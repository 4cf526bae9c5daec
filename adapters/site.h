/*
 * site.h - the site adapter table: how the connector reads a ConfigMgr site.
 *
 * One implementation per source (adminservice now; wsman and offline exports
 * later). The sync engine only sees this table.
 */
#ifndef CMB_SITE_H
#define CMB_SITE_H

#include "../connector/config.h"
#include "../mapping/site_device.h"

#define CMB_SITE_ADAPTER_VERSION 1

/*
 * Called once per device, in ascending ResourceID order. dev is valid during
 * the call only (the adapter owns it). Return 0 to go on, or a negative
 * CMB_E* code to stop the read (read_devices then returns that code).
 */
typedef int (*cmb_site_device_cb)(void *ctx, const struct cmb_site_device *dev);

struct cmb_site_read_stats {
	long pages;              /* page requests made */
	long devices;            /* devices passed to the callback */
	size_t bytes_in;         /* response body bytes */
};

struct cmb_site_adapter {
	int version;             /* CMB_SITE_ADAPTER_VERSION */
	const char *name;        /* the [site] adapter value that selects it */
	/* Creates the adapter's state from cfg; *out is the caller's (close it). Does no I/O. */
	int (*open)(void **out, const struct cmb_config *cfg);
	/* Cheap reachability check (one small request). */
	int (*check)(void *st);
	/*
	 * Reads every device in scope and passes each to cb. Returns 0 only when
	 * the read was complete: any failure (network, HTTP status, malformed or
	 * truncated page) returns a negative code with the message set, and the
	 * caller must treat everything read so far as incomplete.
	 */
	int (*read_devices)(void *st, cmb_site_device_cb cb, void *ctx, struct cmb_site_read_stats *stats);
	void (*close)(void *st);
};

extern const struct cmb_site_adapter cmb_site_adminservice;

/* Looks an adapter up by name; NULL when unknown. */
const struct cmb_site_adapter *cmb_site_adapter_find(const char *name);

#endif
