/*
 * addr.h - an "address:port" to listen on, as options write it:
 * 127.0.0.1:9478, [::1]:9478, localhost:9478 (the loopback address, no
 * name lookup). Numeric addresses only: a listener must not depend on DNS.
 */
#ifndef CMB_ADDR_H
#define CMB_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

struct cmb_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* 0 and *out when text is an address:port (port 0: any free one); -1 when not. */
int cmb_addr_parse(const char *text, struct cmb_addr *out);
/* 1 for 127.0.0.0/8 and ::1 (and ::ffff:127.x.y.z). */
int cmb_addr_is_loopback(const struct cmb_addr *a);
/* "127.0.0.1:9478" or "[::1]:9478", with port (not the one in a). */
void cmb_addr_format(const struct cmb_addr *a, unsigned port, char *out, size_t cap);

#endif
