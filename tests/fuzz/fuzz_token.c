/*
 * fuzz_token.c - libFuzzer target for token endpoint replies and JWTs.
 *
 * Each input is read as the body of a token endpoint's 200 reply
 * (cmb_auth_parse_reply, what every token request ends in), and the token
 * a good reply carries is described as `cmbridge token` does
 * (cmb_jwt_describe_claims); the input itself is also described as a JWT,
 * and as the error body of a refusal (cmb_request_describe_body, what a
 * 400/401 from the authority shows in its message).
 *
 * Beyond not crashing, leaking or hanging: a token taken from a reply is
 * visible ASCII within the token limit with a positive lifetime, and a
 * refused reply's error message never holds the access_token it carried
 * (a token must never reach a message or a log line); an error body's
 * description is one short line without control characters.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "connector/base/error.h"
#include "connector/base/limits.h"
#include "connector/base/log.h"
#include "connector/transport/auth.h"
#include "connector/transport/jwt.h"
#include "connector/transport/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The access_token the reply carries, read independently (NULL when none); caller frees. */
static char *carried_token(const char *text)
{
	char eb[8];
	yajl_val root = yajl_tree_parse(text, eb, sizeof(eb));
	const char *path[] = { "access_token", NULL };
	yajl_val t = root ? yajl_tree_get(root, path, yajl_t_string) : NULL;
	char *out = t ? strdup(t->u.string) : NULL;
	yajl_tree_free(root);
	return out;
}

static void check_token(const char *token, long expires_in)
{
	size_t n = strlen(token);
	if (n == 0 || n > CMB_LIMIT_TOKEN_BYTES || expires_in <= 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)token[i] <= 0x20 || (unsigned char)token[i] >= 0x7f)
			abort();
}

static void describe(const char *token)
{
	char *claims = cmb_jwt_describe_claims(token);
	if (claims && strlen(claims) > 64 * 1024)
		abort();
	free(claims);
}

static void describe_refusal(const uint8_t *data, size_t size)
{
	struct cmb_http_response resp = { .status = 401, .content_type = "application/json; charset=utf-8" };
	resp.body.data = (char *)data;
	resp.body.len = size;
	char *why = cmb_request_describe_body(&resp);
	size_t n = strlen(why);
	if (n > 600)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f)
			abort();
	free(why);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (cmb_log_open("/dev/null") < 0)
		abort();
	cmb_log_set_level(CMB_LOG_DEBUG);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';

	char *token = NULL;
	long expires_in = 0;
	int rc = cmb_auth_parse_reply((const char *)data, size, "https://login.example/t/oauth2/v2.0/token", &token,
				      &expires_in);
	if (rc == 0) {
		check_token(token, expires_in);
		describe(token);
	} else {
		const char *msg = cmb_error_last();
		char *carried = strlen(text) == size ? carried_token(text) : NULL;
		if (token || !msg || !*msg)
			abort();
		if (carried && strlen(carried) >= 12 && strstr(msg, carried)) {
			fprintf(stderr, "the error message holds the access token: %s\n", msg);
			abort();
		}
		free(carried);
	}
	free(token);
	describe(text);
	free(text);
	if (size > 0)
		describe_refusal(data, size);
	return 0;
}
