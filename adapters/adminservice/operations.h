/*
 * operations.h - the AdminService site operations behind the site table's
 * ops_* members (adapters/site.h): InitiateClientOperation,
 * SMS_ClientOperationStatus and SMS_ClientOperation, SMS_CN_ClientStatus and
 * SMS_Collection.BlockClients (docs/wire-format.md §8).
 */
#ifndef CMB_AS_OPERATIONS_H
#define CMB_AS_OPERATIONS_H

#include "adapters/site.h"

/* Operations over the connection of the device reader st (adminservice.c). */
int cmb_as_ops_open(void **out, void *st);
void cmb_as_ops_close(void *ost);
int cmb_as_ops_initiate(void *ost, int type, const char *collection_id, const uint32_t *ids, size_t n,
			int64_t *operation_id);
int cmb_as_ops_find(void *ost, const struct cmb_site_operation_query *q, struct cmb_site_operation **out,
		    size_t *n);
int cmb_as_ops_status(void *ost, int64_t operation_id, struct cmb_site_operation_status *out);
int cmb_as_ops_offline_clients(void *ost, uint32_t **ids, size_t *n);
int cmb_as_ops_block(void *ost, const uint32_t *ids, size_t n);


#endif
