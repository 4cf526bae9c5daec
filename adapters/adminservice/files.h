/*
 * files.h - reads saved AdminService pages from files (offline mapping,
 * `cmbridge map --from adminservice`): the same parser and join as a live
 * read, with cursors over files instead of HTTP.
 */
#ifndef CMB_AS_FILES_H
#define CMB_AS_FILES_H

#include <stddef.h>
#include "adapters/site.h"

/*
 * Each file holds one OData page of one of the five classes, named by its
 * @odata.context ("...$metadata#SMS_R_System"). Files of the same class are
 * read in the order given and must together be in ResourceID order; a class
 * with no file is treated as empty. Passes each joined device to cb.
 * Errors name the file.
 */
int cmb_adminservice_read_files(const char *const *paths, size_t n, cmb_site_device_cb cb, void *ctx);

#endif
