/* ef_emr_sync: the .sync poller's plan. See ef_emr_sync.h. */
#include "ef_emr_sync.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum phase { P_FREE, P_NEW, P_DESCRIBING, P_LISTED, P_FINAL_QUEUED, P_FINAL_DESCRIBING, P_DONE };

struct job {
    uint64_t handle;        /* 0 when the slot is free */
    char *key;              /* "vc\njob" (the hash key); job id after the '\n' */
    const char *job_id;
    size_t vc;
    int phase;
    int cluster_poll;       /* its describe stands for its cluster's listing */
    double created_at;
};

struct cluster {
    char *vc_id;
    double due;             /* next listing; HUGE_VAL when none is planned */
    double interval;
    double created_after;   /* of the listing in progress */
    char *next_token;
    size_t listed;          /* jobs in P_LISTED */
    int listing;            /* a page is in flight */
};

struct ef_emr_sync {
    struct ef_emr_sync_options o;
    struct job *jobs;
    size_t njobs, cap_jobs;
    size_t *free_slots;
    size_t nfree;
    uint32_t generation;
    int32_t *hash;          /* slot index, -1 empty, -2 deleted */
    size_t hash_cap, hash_used;
    uint64_t *queue;        /* handles to describe, from head */
    size_t qhead, qlen, qcap;
    struct cluster *vcs;
    size_t nvcs, cap_vcs;
    double tokens, refilled_at;
    struct ef_emr_sync_stats stats;
};

static const char *const FINAL[] = { "COMPLETED", "FAILED", "CANCELLED", NULL };

int ef_emr_sync_is_final(const char *state)
{
    for (size_t i = 0; state && FINAL[i]; i++)
        if (strcmp(state, FINAL[i]) == 0)
            return 1;
    return 0;
}

struct ef_emr_sync *ef_emr_sync_new(const struct ef_emr_sync_options *opts)
{
    struct ef_emr_sync *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    struct ef_emr_sync_options d = { 2, 1.5, 30, 10, 50 };
    if (opts) {
        if (opts->initial >= 0)
            d.initial = opts->initial;
        if (opts->factor >= 1)
            d.factor = opts->factor;
        if (opts->max > 0)
            d.max = opts->max;
        if (opts->rate > 0)
            d.rate = opts->rate;
        if (opts->page_size > 0)
            d.page_size = opts->page_size;
    }
    if (d.initial > d.max)
        d.initial = d.max;
    s->o = d;
    s->tokens = 1;
    s->refilled_at = -HUGE_VAL;
    return s;
}

void ef_emr_sync_free(struct ef_emr_sync *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->njobs; i++)
        free(s->jobs[i].key);
    for (size_t i = 0; i < s->nvcs; i++) {
        free(s->vcs[i].vc_id);
        free(s->vcs[i].next_token);
    }
    free(s->jobs);
    free(s->free_slots);
    free(s->hash);
    free(s->queue);
    free(s->vcs);
    free(s);
}

/* ---- the (vc, job) -> slot hash --------------------------------------------------- */

static uint64_t fnv(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return h;
}

static int hash_rebuild(struct ef_emr_sync *s, size_t cap)
{
    int32_t *h = malloc(cap * sizeof *h);
    if (!h)
        return -1;
    for (size_t i = 0; i < cap; i++)
        h[i] = -1;
    size_t used = 0;
    for (size_t j = 0; j < s->njobs; j++) {
        if (!s->jobs[j].handle)
            continue;
        size_t i = (size_t)fnv(s->jobs[j].key) & (cap - 1);
        while (h[i] != -1)
            i = (i + 1) & (cap - 1);
        h[i] = (int32_t)j;
        used++;
    }
    free(s->hash);
    s->hash = h;
    s->hash_cap = cap;
    s->hash_used = used;
    return 0;
}

/* The hash position holding key, or (size_t)-1. */
static size_t hash_find(const struct ef_emr_sync *s, const char *key)
{
    if (!s->hash_cap)
        return (size_t)-1;
    size_t i = (size_t)fnv(key) & (s->hash_cap - 1);
    for (size_t n = 0; n < s->hash_cap && s->hash[i] != -1; n++, i = (i + 1) & (s->hash_cap - 1))
        if (s->hash[i] >= 0 && strcmp(s->jobs[s->hash[i]].key, key) == 0)
            return i;
    return (size_t)-1;
}

static int hash_insert(struct ef_emr_sync *s, size_t slot)
{
    if ((s->hash_used + 1) * 2 > s->hash_cap &&
        hash_rebuild(s, s->hash_cap ? s->hash_cap * 2 : 64))
        return -1;
    size_t i = (size_t)fnv(s->jobs[slot].key) & (s->hash_cap - 1);
    while (s->hash[i] >= 0)
        i = (i + 1) & (s->hash_cap - 1);
    if (s->hash[i] == -1)
        s->hash_used++;
    s->hash[i] = (int32_t)slot;
    return 0;
}

/* ---- jobs, clusters, queue --------------------------------------------------------- */

static struct job *job_of(struct ef_emr_sync *s, uint64_t handle)
{
    size_t slot = (size_t)(handle & 0xffffffffu);
    if (slot == 0 || slot > s->njobs || s->jobs[slot - 1].handle != handle)
        return NULL;
    return &s->jobs[slot - 1];
}

static size_t cluster_of(struct ef_emr_sync *s, const char *vc_id, int create)
{
    for (size_t i = 0; i < s->nvcs; i++)
        if (strcmp(s->vcs[i].vc_id, vc_id) == 0)
            return i;
    if (!create)
        return (size_t)-1;
    if (s->nvcs == s->cap_vcs) {
        size_t cap = s->cap_vcs ? s->cap_vcs * 2 : 4;
        struct cluster *v = realloc(s->vcs, cap * sizeof *v);
        if (!v)
            return (size_t)-1;
        s->vcs = v;
        s->cap_vcs = cap;
    }
    struct cluster *c = &s->vcs[s->nvcs];
    memset(c, 0, sizeof *c);
    c->vc_id = strdup(vc_id);
    if (!c->vc_id)
        return (size_t)-1;
    c->due = HUGE_VAL;
    c->interval = s->o.initial;
    s->stats.clusters = ++s->nvcs;
    return s->nvcs - 1;
}

static int enqueue(struct ef_emr_sync *s, uint64_t handle)
{
    if (s->qhead + s->qlen == s->qcap) {
        if (s->qhead > 0) {
            memmove(s->queue, s->queue + s->qhead, s->qlen * sizeof *s->queue);
            s->qhead = 0;
        }
        if (s->qlen == s->qcap) {
            size_t cap = s->qcap ? s->qcap * 2 : 64;
            uint64_t *q = realloc(s->queue, cap * sizeof *q);
            if (!q)
                return -1;
            s->queue = q;
            s->qcap = cap;
        }
    }
    s->queue[s->qhead + s->qlen++] = handle;
    return 0;
}

uint64_t ef_emr_sync_watch(struct ef_emr_sync *s, const char *vc_id, const char *job_id, double now)
{
    (void)now;
    size_t vc = cluster_of(s, vc_id, 1);
    if (vc == (size_t)-1)
        return 0;
    size_t lv = strlen(vc_id), lj = strlen(job_id);
    char *key = malloc(lv + lj + 2);
    if (!key)
        return 0;
    memcpy(key, vc_id, lv);
    key[lv] = '\n';
    memcpy(key + lv + 1, job_id, lj + 1);
    size_t slot;
    if (s->nfree) {
        slot = s->free_slots[--s->nfree];
    } else {
        if (s->njobs == s->cap_jobs) {
            size_t cap = s->cap_jobs ? s->cap_jobs * 2 : 64;
            struct job *j = realloc(s->jobs, cap * sizeof *j);
            size_t *f = realloc(s->free_slots, cap * sizeof *f);
            if (j)
                s->jobs = j;
            if (f)
                s->free_slots = f;
            if (!j || !f) {
                free(key);
                return 0;
            }
            s->cap_jobs = cap;
        }
        slot = s->njobs++;
        memset(&s->jobs[slot], 0, sizeof s->jobs[slot]);
    }
    struct job *j = &s->jobs[slot];
    j->handle = 0;                  /* not yet: a rebuild of the hash must not see it */
    j->key = key;
    j->job_id = key + lv + 1;
    j->vc = vc;
    j->phase = P_NEW;
    j->created_at = HUGE_VAL;
    if (hash_insert(s, slot)) {
        free(key);
        j->key = NULL;
        s->free_slots[s->nfree++] = slot;
        return 0;
    }
    if (++s->generation == 0)
        s->generation = 1;
    j->handle = ((uint64_t)s->generation << 32) | (uint64_t)(slot + 1);
    s->stats.watched++;
    if (enqueue(s, j->handle)) {
        ef_emr_sync_unwatch(s, j->handle);
        return 0;
    }
    return j->handle;
}

void ef_emr_sync_unwatch(struct ef_emr_sync *s, uint64_t handle)
{
    struct job *j = job_of(s, handle);
    if (!j)
        return;
    if (j->phase == P_LISTED)
        s->vcs[j->vc].listed--;
    size_t pos = hash_find(s, j->key);
    if (pos != (size_t)-1)
        s->hash[pos] = -2;
    free(j->key);
    j->key = NULL;
    j->handle = 0;
    j->phase = P_FREE;
    s->free_slots[s->nfree++] = (size_t)(j - s->jobs);
    s->stats.watched--;
}

void ef_emr_sync_redescribe(struct ef_emr_sync *s, uint64_t handle)
{
    struct job *j = job_of(s, handle);
    if (!j)
        return;
    if (j->phase == P_LISTED)
        s->vcs[j->vc].listed--;
    j->cluster_poll = 0;
    int final = j->phase == P_FINAL_DESCRIBING || j->phase == P_FINAL_QUEUED;
    j->phase = final ? P_FINAL_QUEUED : P_NEW;
    (void)enqueue(s, handle);
}

/* ---- planning ---------------------------------------------------------------------- */

/* The bucket holds one token: requests are spaced 1/rate apart, so no window of T
 * seconds holds more than T * rate + 1 of them. */
static void refill(struct ef_emr_sync *s, double now)
{
    double burst = 1;
    if (s->refilled_at == -HUGE_VAL || now < s->refilled_at) {
        s->refilled_at = now;
        return;
    }
    s->tokens += (now - s->refilled_at) * s->o.rate;
    if (s->tokens > burst)
        s->tokens = burst;
    s->refilled_at = now;
}

/* The first queued job still waiting for a describe (stale handles dropped). */
static struct job *queued(struct ef_emr_sync *s)
{
    while (s->qlen) {
        struct job *j = job_of(s, s->queue[s->qhead]);
        if (j && (j->phase == P_NEW || j->phase == P_FINAL_QUEUED))
            return j;
        s->qhead++;
        s->qlen--;
    }
    return NULL;
}

static struct cluster *due_cluster(struct ef_emr_sync *s, double now, double *next_due)
{
    *next_due = HUGE_VAL;
    for (size_t i = 0; i < s->nvcs; i++) {
        struct cluster *c = &s->vcs[i];
        if (c->listing || !c->listed)
            continue;
        if (c->due <= now)
            return c;
        if (c->due < *next_due)
            *next_due = c->due;
    }
    return NULL;
}

static double oldest_listed(const struct ef_emr_sync *s, size_t vc)
{
    double t = HUGE_VAL;
    for (size_t i = 0; i < s->njobs; i++) {
        const struct job *j = &s->jobs[i];
        if (j->handle && j->vc == vc && j->phase == P_LISTED && j->created_at < t)
            t = j->created_at;
    }
    return t;
}

static struct job *only_listed(struct ef_emr_sync *s, size_t vc)
{
    for (size_t i = 0; i < s->njobs; i++) {
        struct job *j = &s->jobs[i];
        if (j->handle && j->vc == vc && j->phase == P_LISTED)
            return j;
    }
    return NULL;
}

int ef_emr_sync_next(struct ef_emr_sync *s, double now, struct ef_emr_sync_action *a)
{
    memset(a, 0, sizeof *a);
    refill(s, now);
    double next_due;
    struct job *j = queued(s);
    struct cluster *c = j ? NULL : due_cluster(s, now, &next_due);
    if (!j && !c) {
        a->kind = EF_EMR_SYNC_IDLE;
        a->wake_at = next_due;
        return a->kind;
    }
    if (s->tokens < 1 - 1e-9) {
        /* a hair (10 us) past the refill: clock values near 1.7e9 s are 2.4e-7 s apart, so
         * waking exactly at the refill can find the bucket a rounding short, again and again */
        a->kind = EF_EMR_SYNC_IDLE;
        a->wake_at = now + (1 - s->tokens) / s->o.rate + 1e-5;
        return a->kind;
    }
    s->tokens -= 1;
    if (j) {
        s->qhead++;
        s->qlen--;
        a->kind = EF_EMR_SYNC_DESCRIBE;
        a->handle = j->handle;
        a->vc_id = s->vcs[j->vc].vc_id;
        a->job_id = j->job_id;
        a->final = j->phase == P_FINAL_QUEUED;
        j->phase = a->final ? P_FINAL_DESCRIBING : P_DESCRIBING;
        s->stats.describes++;
        return a->kind;
    }
    if (!c->next_token && c->listed == 1) {
        /* one job left to watch on the cluster: describing it costs the same request as a
         * listing, shows every state it goes through and needs no describe at the end */
        struct job *only = only_listed(s, (size_t)(c - s->vcs));
        if (only) {
            c->listed--;
            c->due = HUGE_VAL;
            only->phase = P_DESCRIBING;
            only->cluster_poll = 1;
            a->kind = EF_EMR_SYNC_DESCRIBE;
            a->handle = only->handle;
            a->vc_id = c->vc_id;
            a->job_id = only->job_id;
            s->stats.describes++;
            return a->kind;
        }
    }
    if (!c->next_token)
        c->created_after = oldest_listed(s, (size_t)(c - s->vcs));
    c->listing = 1;
    a->kind = EF_EMR_SYNC_LIST;
    a->vc_id = c->vc_id;
    a->created_after = c->created_after == HUGE_VAL ? 0 : floor(c->created_after) - 1;
    a->next_token = c->next_token;
    a->page_size = s->o.page_size;
    s->stats.lists++;
    return a->kind;
}

void ef_emr_sync_described(struct ef_emr_sync *s, uint64_t handle, double now, const char *state,
                           double created_at)
{
    struct job *j = job_of(s, handle);
    if (!j)
        return;
    int cluster_poll = j->cluster_poll;
    j->cluster_poll = 0;
    if (ef_emr_sync_is_final(state)) {
        j->phase = P_DONE;
        return;
    }
    if (created_at == created_at && created_at < j->created_at)   /* not NaN */
        j->created_at = created_at;
    if (j->created_at == HUGE_VAL)
        j->created_at = now - 300;     /* unknown: a margin for clock skew */
    struct cluster *c = &s->vcs[j->vc];
    if (cluster_poll) {
        /* the cluster's poll: its back-off goes on (unless another job restarted it) */
        j->phase = P_LISTED;
        if (c->listed++ == 0) {
            c->due = now + c->interval;
            c->interval = c->interval * s->o.factor;
            if (c->interval > s->o.max)
                c->interval = s->o.max;
        }
        return;
    }
    if (j->phase != P_LISTED) {
        j->phase = P_LISTED;
        if (c->listed++ == 0 || c->due == HUGE_VAL) {
            c->interval = s->o.initial;
            if (!c->listing)
                c->due = now + c->interval;
        }
    }
}

void ef_emr_sync_listed(struct ef_emr_sync *s, const char *vc_id, double now,
                        const struct ef_emr_sync_item *items, size_t n, const char *next_token)
{
    size_t vc = cluster_of(s, vc_id, 0);
    if (vc == (size_t)-1)
        return;
    struct cluster *c = &s->vcs[vc];
    size_t lv = strlen(vc_id);
    char key[512];
    for (size_t i = 0; i < n; i++) {
        if (!items[i].id || !ef_emr_sync_is_final(items[i].state) || lv + strlen(items[i].id) + 2 > sizeof key)
            continue;
        memcpy(key, vc_id, lv);
        key[lv] = '\n';
        strcpy(key + lv + 1, items[i].id);
        size_t pos = hash_find(s, key);
        if (pos == (size_t)-1)
            continue;
        struct job *j = &s->jobs[s->hash[pos]];
        if (j->phase != P_LISTED)
            continue;
        j->phase = P_FINAL_QUEUED;
        c->listed--;
        (void)enqueue(s, j->handle);
    }
    c->listing = 0;
    free(c->next_token);
    c->next_token = NULL;
    if (next_token && *next_token) {
        c->next_token = strdup(next_token);
        if (c->next_token) {
            c->due = now;                   /* the next page at once */
            return;
        }
    }
    c->due = now + c->interval;
    c->interval = c->interval * s->o.factor;
    if (c->interval <= 0)
        c->interval = 1;
    if (c->interval > s->o.max)
        c->interval = s->o.max;
}

void ef_emr_sync_list_failed(struct ef_emr_sync *s, const char *vc_id, double now)
{
    size_t vc = cluster_of(s, vc_id, 0);
    if (vc == (size_t)-1)
        return;
    struct cluster *c = &s->vcs[vc];
    c->listing = 0;
    free(c->next_token);
    c->next_token = NULL;
    c->due = now + (c->interval > 0 ? c->interval : 1);
}

void ef_emr_sync_get_stats(const struct ef_emr_sync *s, struct ef_emr_sync_stats *out)
{
    *out = s->stats;
}
