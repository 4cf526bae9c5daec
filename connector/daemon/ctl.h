/*
 * ctl.h - the control socket of `cmbridge run`, the way chronyc talks to
 * chronyd: STATE_DIR/cmbridge.sock, AF_UNIX, mode 0600, only for the
 * daemon's own uid and root (SO_PEERCRED), one request line and one JSON
 * reply per connection (docs/operations.md, "Control socket").
 *
 * The server is a thread that accepts and reads; it answers `status`
 * itself from the view the main loop last published, and hands every
 * other request to the main loop (it wakes it through the interrupt flag,
 * so an idle long poll ends) and waits for its answer. Must never: run a
 * command itself, touch the state or the adapters, or let a signal be
 * delivered to its threads.
 */
#ifndef CMB_CTL_H
#define CMB_CTL_H

#include <yajl/yajl_tree.h>

#define CMB_CTL_SOCKET "cmbridge.sock"
#define CMB_CTL_LINE_MAX 1024

struct cmb_ctl;
struct cmb_ctl_request;

/*
 * Binds STATE_DIR/cmbridge.sock (replacing a stale one: the caller holds
 * the state lock, so no other daemon owns it) and starts the server
 * thread. A request for the main loop sets *wake to 1. *out is the
 * caller's (cmb_ctl_stop).
 */
int cmb_ctl_start(struct cmb_ctl **out, const char *state_dir, volatile int *wake);
/*
 * Stops the server: unanswered requests get {"ok":false,"error":"stopping"};
 * waits for its threads, removes the socket, frees c (NULL is fine). The
 * main loop answers what it took first.
 */
void cmb_ctl_stop(struct cmb_ctl *c);
/* The JSON object `status` requests get from now on (taken: the caller must not use it). */
void cmb_ctl_publish(struct cmb_ctl *c, char *view_json);

/* The request waiting for the main loop, or NULL; the main loop then owes it one cmb_ctl_answer. */
struct cmb_ctl_request *cmb_ctl_take(struct cmb_ctl *c);
/* The request's words (argv[0] is the command; at most 16, split on spaces); valid until answered. */
int cmb_ctl_request_argc(const struct cmb_ctl_request *r);
const char *cmb_ctl_request_arg(const struct cmb_ctl_request *r, int i);
/* Answers r with a JSON object (taken). r must not be used afterwards. */
void cmb_ctl_answer(struct cmb_ctl_request *r, char *reply_json);
/* Answers r with {"ok":false,"error":message}. */
void cmb_ctl_answer_error(struct cmb_ctl_request *r, const char *message);

/*
 * The client: sends line to the daemon of state_dir and waits for its
 * reply (as long as it takes; a stop request ends the wait with
 * CMB_ECANCELED). *reply is the parsed JSON object (yajl_tree_free).
 * CMB_ENOTFOUND when no daemon listens there (no socket, or a stale one).
 */
int cmb_ctl_call(const char *state_dir, const char *line, yajl_val *reply);

#endif
