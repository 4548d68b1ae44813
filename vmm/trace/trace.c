#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "status.h"
#include "trace.h"

/* A record is formatted whole, then written with one write(2): no stdio
 * buffer holds half a line when the run ends, and a signal that interrupts
 * the write (EINTR) is retried rather than turned into a stream error. */
#define LINE_MAX_BYTES 4096

struct trace {
	int fd;
	bool own_fd;
	bool failed;
	const char *path;
	uint32_t events;
	enum trace_format format;
	void (*stop)(int status);
	uint64_t seq;
	uint64_t last_ns; /* records' times never go back */
	struct timespec t0;
};

struct rec {
	char buf[LINE_MAX_BYTES];
	size_t len;
	bool json;
};

static const char *const event_names[TRACE_EV_COUNT] = {
	[TRACE_EV_SHADOW_INIT] = "shadow_init",
	[TRACE_EV_FILL] = "fill",
	[TRACE_EV_AD_SET] = "ad_set",
	[TRACE_EV_GUEST_FAULT] = "guest_fault",
	[TRACE_EV_CR3] = "cr3",
	[TRACE_EV_INVLPG] = "invlpg",
	[TRACE_EV_EVICT] = "evict",
	[TRACE_EV_FLUSH] = "flush",
	[TRACE_EV_EMULATE] = "emulate",
	[TRACE_EV_EXIT] = "exit",
	[TRACE_EV_PREFETCH] = "prefetch",
	[TRACE_EV_UNPROTECT] = "unprotect",
	[TRACE_EV_REFLECT] = "reflect",
};

const char *trace_event_name(enum trace_event ev)
{
	return (unsigned)ev < TRACE_EV_COUNT ? event_names[ev] : "?";
}

int trace_events_parse(const char *list, uint32_t *mask, char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL;
	int rc = 0;

	*mask = 0;
	if (!copy) {
		snprintf(err, errlen, "--trace-events: out of memory");
		return -1;
	}
	for (char *g = strtok_r(copy, ",", &save); g && !rc; g = strtok_r(NULL, ",", &save)) {
		uint32_t m = 0;
		for (unsigned e = 0; e < TRACE_EV_COUNT; e++)
			m |= fnmatch(g, event_names[e], 0) == 0 ? 1u << e : 0;
		if (!m) {
			snprintf(err, errlen,
				 "--trace-events: '%s' matches no event (shadow_init, fill, "
				 "ad_set, guest_fault, cr3, invlpg, evict, flush, emulate, exit)",
				 g);
			rc = -1;
		}
		*mask |= m;
	}
	if (!rc && !*mask) {
		snprintf(err, errlen, "--trace-events: empty list");
		rc = -1;
	}
	free(copy);
	return rc;
}

struct trace *trace_open(const struct trace_config *cfg, char *err, size_t errlen)
{
	struct trace *t = calloc(1, sizeof(*t));
	bool std = strcmp(cfg->path, "-") == 0;

	if (!t) {
		snprintf(err, errlen, "trace: out of memory");
		return NULL;
	}
	t->fd = std ? STDERR_FILENO
		    : open(cfg->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (t->fd < 0) {
		snprintf(err, errlen, "trace: %s: cannot open: %s", cfg->path, strerror(errno));
		free(t);
		return NULL;
	}
	t->own_fd = !std;
	t->path = cfg->path;
	t->events = cfg->events;
	t->format = cfg->format;
	t->stop = cfg->stop;
	clock_gettime(CLOCK_MONOTONIC, &t->t0);
	return t;
}

bool trace_close(struct trace *t)
{
	bool ok;

	if (!t)
		return true;
	ok = !t->failed;
	if (t->own_fd && close(t->fd) != 0 && ok) {
		pr_err("trace: %s: close: %s", t->path, strerror(errno));
		ok = false;
	}
	free(t);
	return ok;
}

bool trace_failed(const struct trace *t)
{
	return t && t->failed;
}

/* ---- formatting ---------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void put(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->len >= sizeof(r->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	r->len = n < 0 ? r->len : r->len + (size_t)n;
	if (r->len >= sizeof(r->buf))
		r->len = sizeof(r->buf) - 1;
}

static void hex(struct rec *r, const char *key, uint64_t v)
{
	put(r, r->json ? ",\"%s\":\"0x%llx\"" : " %s=0x%llx", key, (unsigned long long)v);
}

static void num(struct rec *r, const char *key, long long v)
{
	put(r, r->json ? ",\"%s\":%lld" : " %s=%lld", key, v);
}

/* Only for strings from fixed vocabularies (no JSON escaping needed). */
static void str(struct rec *r, const char *key, const char *s)
{
	put(r, r->json ? ",\"%s\":\"%s\"" : " %s=%s", key, s);
}

uint64_t trace_ns(const struct trace *t)
{
	struct timespec now;

	if (!t)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t->t0.tv_sec) * 1000000000ull + (uint64_t)now.tv_nsec -
	       (uint64_t)t->t0.tv_nsec;
}

/* Returns false (nothing to write) when the event is filtered out; the
 * sequence number counts every event, so gaps show what was filtered.  `at`
 * is the event's time, or NOW: a time taken elsewhere (the monitor's TSC)
 * is kept between the last record's and now. */
#define NOW UINT64_MAX
static bool begin_at(struct trace *t, struct rec *r, enum trace_event ev, uint64_t at)
{
	uint64_t seq = t->seq++, ns;

	if (t->failed || !(t->events & (1u << ev)))
		return false;
	ns = trace_ns(t);
	if (at < ns)
		ns = at;
	if (ns < t->last_ns)
		ns = t->last_ns;
	t->last_ns = ns;
	r->len = 0;
	r->json = t->format == TRACE_FMT_JSON;
	if (r->json)
		put(r, "{\"seq\":%llu,\"vcpu\":0,\"ns\":%llu,\"event\":\"%s\"",
		    (unsigned long long)seq, (unsigned long long)ns, event_names[ev]);
	else
		put(r, "[%llu.%09llu] #%llu vcpu0 %s", (unsigned long long)(ns / 1000000000ull),
		    (unsigned long long)(ns % 1000000000ull), (unsigned long long)seq,
		    event_names[ev]);
	return true;
}

static bool begin(struct trace *t, struct rec *r, enum trace_event ev)
{
	return begin_at(t, r, ev, NOW);
}

static void end(struct trace *t, struct rec *r)
{
	size_t off = 0;

	put(r, r->json ? "}\n" : "\n");
	if (r->buf[r->len - 1] != '\n')
		r->buf[r->len - 1] = '\n'; /* never happens: records are far below the bound */
	while (off < r->len) {
		ssize_t n = write(t->fd, r->buf + off, r->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			pr_err("trace: %s: write failed: %s", t->path,
			       n < 0 ? strerror(errno) : "no progress");
			t->failed = true;
			if (t->stop)
				t->stop(VMM_E_TRACE);
			return;
		}
		off += (size_t)n;
	}
}

/* KVM's pferr flags (mmutrace.h kvm_mmu_trace_pferr_flags): "P|W|U|RSVD|F". */
static const char *pferr_flags(uint64_t err, char *buf, size_t len)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} f[] = {
		{ X86_PF_P, "P" },       { X86_PF_W, "W" }, { X86_PF_U, "U" },
		{ X86_PF_RSVD, "RSVD" }, { X86_PF_I, "F" },
	};
	size_t n = 0;

	buf[0] = 0;
	for (unsigned i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (err & f[i].bit)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "|" : "", f[i].name);
	return buf;
}

/* KVM's access_str style: "wux" with '-' for what the access is not. */
static const char *access_str(unsigned access, char buf[4])
{
	buf[0] = access & SHADOW_ACC_WRITE ? 'w' : '-';
	buf[1] = access & SHADOW_ACC_USER ? 'u' : '-';
	buf[2] = access & SHADOW_ACC_FETCH ? 'x' : '-';
	buf[3] = 0;
	return buf;
}

static const char *ad_str(uint64_t bits)
{
	bool a = bits & X86_PTE_A, d = bits & X86_PTE_D;
	return a && d ? "A|D" : a ? "A" : d ? "D" : "";
}

static void error_code(struct rec *r, uint64_t err)
{
	char flags[32];

	hex(r, "error_code", err);
	str(r, "pferr", pferr_flags(err, flags, sizeof(flags)));
}

/* The guest entries walked, the root's first (PML4E in 4-level paging): where each lives, its value after
 * the A/D update, and the A/D bits this fault set in it. */
static void walk(struct rec *r, const struct shadow_event *ev)
{
	uint64_t all = 0;
	int top = ev->level + ev->depth - 1; /* the mode's first entry read (shadow.h) */

	put(r, r->json ? ",\"walk\":[" : " walk=");
	for (int l = top; l >= ev->level; l--) {
		const char *sep = l == top ? "" : ",";
		if (r->json)
			put(r,
			    "%s{\"level\":%d,\"gpa\":\"0x%llx\",\"pte\":\"0x%llx\",\"ad\":\"%s\"}",
			    sep, l, (unsigned long long)ev->gpte_gpa[l],
			    (unsigned long long)ev->gpte[l], ad_str(ev->ad_set[l]));
		else
			put(r, "%sL%d@0x%llx=0x%llx%s%s", sep, l,
			    (unsigned long long)ev->gpte_gpa[l], (unsigned long long)ev->gpte[l],
			    ev->ad_set[l] ? "+" : "", ad_str(ev->ad_set[l]));
		all |= ev->ad_set[l];
	}
	put(r, r->json ? "]" : "");
	str(r, "ad", ad_str(all));
}

static void fault_head(struct rec *r, const struct shadow_event *ev, bool hidden)
{
	char acc[4];

	hex(r, "gva", ev->gva);
	hex(r, "cr3", ev->vcr3);
	str(r, "access", access_str(ev->access, acc));
	if (hidden)
		error_code(r, ev->error_code);
	num(r, "level", ev->level);
}

static const char *flush_reason(enum shadow_flush_reason reason)
{
	switch (reason) {
	case SHADOW_FLUSH_EXPLICIT: return "explicit";
	case SHADOW_FLUSH_CR3: return "cr3";
	case SHADOW_FLUSH_CPU_STATE: return "cpu_state";
	case SHADOW_FLUSH_EVICT: return "pool_full";
	}
	return "?";
}

static enum trace_event event_of(enum shadow_event_kind kind)
{
	switch (kind) {
	case SHADOW_EV_FILL: return TRACE_EV_FILL;
	case SHADOW_EV_AD_SET: return TRACE_EV_AD_SET;
	case SHADOW_EV_FLUSH: return TRACE_EV_FLUSH;
	case SHADOW_EV_EVICT: return TRACE_EV_EVICT;
	case SHADOW_EV_GUEST_FAULT: return TRACE_EV_GUEST_FAULT;
	case SHADOW_EV_INVLPG: return TRACE_EV_INVLPG;
	case SHADOW_EV_CR3: return TRACE_EV_CR3;
	case SHADOW_EV_PREFETCH: return TRACE_EV_PREFETCH;
	case SHADOW_EV_UNPROTECT: return TRACE_EV_UNPROTECT;
	case SHADOW_EV_COUNT: break;
	}
	return TRACE_EV_COUNT;
}

static void shadow_fields(struct rec *r, const struct shadow_event *ev)
{
	switch (ev->kind) {
	case SHADOW_EV_FILL:
		fault_head(r, ev, true);
		hex(r, "gpa", ev->gpa);
		hex(r, "gfn", ev->gpa >> X86_PAGE_SHIFT);
		hex(r, "spte", ev->spte);
		hex(r, "sptep", ev->spte_mpa);
		walk(r, ev);
		break;
	case SHADOW_EV_AD_SET:
		fault_head(r, ev, true);
		walk(r, ev);
		break;
	case SHADOW_EV_GUEST_FAULT:
		fault_head(r, ev, false);
		num(r, "vector", ev->vector);
		error_code(r, ev->pferr);
		walk(r, ev);
		break;
	case SHADOW_EV_CR3: hex(r, "cr3", ev->vcr3); break;
	case SHADOW_EV_INVLPG:
		hex(r, "gva", ev->gva);
		hex(r, "cr3", ev->vcr3);
		break;
	case SHADOW_EV_FLUSH:
	case SHADOW_EV_EVICT:
		str(r, "reason", flush_reason(ev->reason));
		hex(r, "cr3", ev->vcr3);
		if (ev->kind == SHADOW_EV_EVICT)
			hex(r, "gva", ev->gva);
		break;
	case SHADOW_EV_PREFETCH:
		hex(r, "gva", ev->gva);
		hex(r, "cr3", ev->vcr3);
		num(r, "level", ev->level);
		hex(r, "gpa", ev->gpa);
		hex(r, "gfn", ev->gpa >> X86_PAGE_SHIFT);
		hex(r, "spte", ev->spte);
		hex(r, "sptep", ev->spte_mpa);
		break;
	case SHADOW_EV_UNPROTECT:
		hex(r, "gfn", ev->gpa >> X86_PAGE_SHIFT);
		hex(r, "cr3", ev->vcr3);
		num(r, "zapped", ev->zapped);
		put(r, r->json ? ",\"volatile\":%s" : " volatile=%s",
		    ev->volatile_table ? "true" : "false");
		break;
	case SHADOW_EV_COUNT: break;
	}
	num(r, "pages", ev->pages_in_use);
}

void trace_shadow_event_at(struct trace *t, const struct shadow_event *ev, uint64_t ns)
{
	struct rec r;

	if (!t || !begin_at(t, &r, event_of(ev->kind), ns))
		return;
	shadow_fields(&r, ev);
	end(t, &r);
}

void trace_shadow_event(void *opaque, const struct shadow_event *ev)
{
	trace_shadow_event_at(opaque, ev, NOW);
}

void trace_shadow_init(struct trace *t, mpa_t root, gpa_t vcr3, const uint64_t *table,
		       unsigned hv_index)
{
	struct rec r;
	bool first = true;

	if (!t || !begin(t, &r, TRACE_EV_SHADOW_INIT))
		return;
	hex(&r, "root", root);
	hex(&r, "cr3", vcr3);
	put(&r, r.json ? ",\"entries\":[" : " entries=");
	for (unsigned i = 0; i < X86_PT_ENTRIES; i++) {
		const char *owner = i == hv_index ? "hypervisor" : "guest";
		if (!(table[i] & X86_PTE_P))
			continue;
		if (r.json)
			put(&r, "%s{\"index\":%u,\"spte\":\"0x%llx\",\"owner\":\"%s\"}",
			    first ? "" : ",", i, (unsigned long long)table[i], owner);
		else
			put(&r, "%spml4[%u]=0x%llx(%s)", first ? "" : ",", i,
			    (unsigned long long)table[i], owner);
		first = false;
	}
	put(&r, r.json ? "]" : "");
	end(t, &r);
}

void trace_emulate_at(struct trace *t, uint64_t rip, unsigned vector, const char *mnemonic,
		      const uint8_t *bytes, size_t len, const char *result, uint64_t ns)
{
	char hexb[3 * 16 + 1] = "";
	struct rec r;

	if (!t || !begin_at(t, &r, TRACE_EV_EMULATE, ns))
		return;
	for (size_t i = 0, n = 0; i < len && i < 16; i++)
		n += (size_t)snprintf(hexb + n, sizeof(hexb) - n, "%s%02x", i ? " " : "", bytes[i]);
	hex(&r, "rip", rip);
	num(&r, "vector", vector);
	str(&r, "mnemonic", mnemonic);
	put(&r, r.json ? ",\"bytes\":\"%s\"" : " bytes=\"%s\"", hexb);
	str(&r, "result", result);
	end(t, &r);
}

void trace_emulate(struct trace *t, uint64_t rip, unsigned vector, const char *mnemonic,
		   const uint8_t *bytes, size_t len, const char *result)
{
	trace_emulate_at(t, rip, vector, mnemonic, bytes, len, result, NOW);
}

void trace_reflect(struct trace *t, unsigned vector, bool has_err, uint32_t err, uint64_t cr2,
		   bool soft, uint64_t rip)
{
	struct rec r;

	if (!t || !begin(t, &r, TRACE_EV_REFLECT))
		return;
	num(&r, "vector", vector);
	/* -1: no error code pushed for this vector */
	num(&r, "error_code", has_err ? (long long)err : -1);
	hex(&r, "cr2", vector == X86_EXC_PF ? cr2 : 0);
	put(&r, r.json ? ",\"soft\":%s" : " soft=%s", soft ? "true" : "false");
	hex(&r, "rip", rip);
	end(t, &r);
}

void trace_exit(struct trace *t, int status, uint64_t exits, const char *kvm_exit)
{
	struct rec r;

	if (!t || !begin(t, &r, TRACE_EV_EXIT))
		return;
	num(&r, "status", status);
	str(&r, "reason", vmm_status_name(status));
	num(&r, "exits", (long long)exits);
	str(&r, "kvm_exit", kvm_exit);
	end(t, &r);
}
