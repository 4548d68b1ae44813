#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "status.h"
#include "trace_read.h"

const char *trace_rec_str(struct json_object *rec, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(rec, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

bool trace_rec_u64(struct json_object *rec, const char *key, uint64_t *out)
{
	struct json_object *v;
	const char *s;
	char *end;

	if (!json_object_object_get_ex(rec, key, &v))
		return false;
	if (json_object_is_type(v, json_type_int)) {
		*out = (uint64_t)json_object_get_int64(v);
		return true;
	}
	if (!(s = trace_rec_str(rec, key)))
		return false;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return end != s && !*end && !errno;
}

int trace_rec_event(struct json_object *rec)
{
	const char *ev = trace_rec_str(rec, "event");
	unsigned e;

	if (!ev)
		return -1;
	for (e = 0; e < TRACE_EV_COUNT && strcmp(ev, trace_event_name(e)); e++)
		;
	return (int)e;
}

/* One line as a JSON object, or NULL.  The tokener is reused: making one
 * per line costs as much as the parse. */
static struct json_object *parse_line(struct json_tokener *tok, const char *line, size_t len)
{
	struct json_object *o;

	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o &&
	    (json_tokener_get_error(tok) != json_tokener_success ||
	     json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

int trace_read(FILE *in, trace_record_fn fn, void *ctx, struct trace_read_result *res, char *err,
	       size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	char *line = NULL, why[200] = "";
	size_t cap = 0;
	uint64_t lineno = 0, bad = 0;
	ssize_t n;
	int rc = tok ? 0 : -1;

	memset(res, 0, sizeof(*res));
	if (!tok)
		snprintf(err, errlen, "out of memory");
	while (!rc && (n = getline(&line, &cap, in)) >= 0) {
		struct json_object *o;
		lineno++;
		if (bad) /* a bad line with more after it is not a truncated tail */
			break;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (n == 0)
			continue;
		if (!(o = parse_line(tok, line, (size_t)n))) {
			bad = lineno;
			continue;
		}
		res->records++;
		rc = fn(ctx, o, why, sizeof(why));
		json_object_put(o);
		if (rc)
			snprintf(err, errlen, "line %llu: %s", (unsigned long long)lineno, why);
	}
	if (!rc && bad && bad != lineno) {
		snprintf(err, errlen, "line %llu: not JSON", (unsigned long long)bad);
		rc = -1;
	}
	if (!rc && bad)
		res->truncated = bad;
	free(line);
	if (tok)
		json_tokener_free(tok);
	return rc;
}

int trace_read_path(const char *cmd, const char *path, trace_record_fn fn, void *ctx,
		    struct trace_read_result *res)
{
	FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char err[256] = "";
	int rc;

	if (!in) {
		pr_err("%s: %s: cannot open: %s", cmd, path, strerror(errno));
		return VMM_E_NOINPUT;
	}
	rc = trace_read(in, fn, ctx, res, err, sizeof(err));
	if (in != stdin)
		fclose(in);
	if (rc) {
		pr_err("%s: %s: %s", cmd, path, err);
		return VMM_E_IMAGE;
	}
	if (res->truncated)
		pr_warn("%s: %s: line %llu: truncated last line skipped", cmd, path,
			(unsigned long long)res->truncated);
	return VMM_OK;
}
