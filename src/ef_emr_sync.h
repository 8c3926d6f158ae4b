/* ef_emr_sync: the .sync poller's plan (pure C, no Lua, no I/O).
 *
 * It holds the set of watched job runs and their virtual clusters and says what to ask
 * next, so many jobs on one virtual cluster cost O(virtual clusters) requests per
 * interval instead of one per job:
 *   - a newly watched job is described once (its state and createdAt);
 *   - then each virtual cluster with watched jobs is listed on its back-off schedule:
 *     ListJobRuns filtered by the final states and createdAfter = the oldest watched
 *     job's creation, page by page;
 *   - a watched job a listing shows final is described once more (the full JobRun), and
 *     then it is done;
 *   - a cluster with one watched job left is not listed: that job is described in the
 *     listing's place (the same one request an interval, every state it goes through, and
 *     no describe at the end).
 * Every request takes the token of the endpoint's bucket (refilled `rate` times a second,
 * holding one), so a Map of 10,000 jobs never floods the service. The caller does the calls
 * (through ef_emr_client or any transport) and reports the answers; the plan says when
 * to wake up next.
 *
 *   struct ef_emr_sync *s = ef_emr_sync_new(&opts);
 *   uint64_t h = ef_emr_sync_watch(s, vc_id, job_id, now);
 *   for (;;) {
 *       struct ef_emr_sync_action a;
 *       switch (ef_emr_sync_next(s, now, &a)) {
 *       case EF_EMR_SYNC_DESCRIBE: ... DescribeJobRun(a.vc_id, a.job_id) ...
 *           ef_emr_sync_described(s, a.handle, now, state, created_at); break;
 *       case EF_EMR_SYNC_LIST: ... ListJobRuns(a.vc_id, final states, a.created_after, a.next_token) ...
 *           ef_emr_sync_listed(s, a.vc_id, now, items, n, next_token); break;
 *       case EF_EMR_SYNC_IDLE: sleep until a.wake_at (HUGE_VAL: nothing to do)
 *       }
 *   }
 */
#ifndef EF_EMR_SYNC_H
#define EF_EMR_SYNC_H

#include <stddef.h>
#include <stdint.h>

struct ef_emr_sync_options {
    double initial;   /* seconds before a cluster's first listing (default 2) */
    double factor;    /* interval growth (default 1.5) */
    double max;       /* longest interval (default 30) */
    double rate;      /* requests a second for the endpoint (default 10) */
    int page_size;    /* ListJobRuns maxResults (default 50) */
};

enum ef_emr_sync_kind { EF_EMR_SYNC_IDLE, EF_EMR_SYNC_DESCRIBE, EF_EMR_SYNC_LIST };

struct ef_emr_sync_action {
    int kind;
    double wake_at;            /* IDLE: when something may be due (HUGE_VAL: nothing watched) */
    uint64_t handle;           /* DESCRIBE */
    const char *vc_id;         /* DESCRIBE, LIST (valid until the next call) */
    const char *job_id;        /* DESCRIBE */
    int final;                 /* DESCRIBE: the job was listed final (the last describe) */
    double created_after;      /* LIST: Unix seconds */
    const char *next_token;    /* LIST: NULL for the first page */
    int page_size;             /* LIST */
};

struct ef_emr_sync_item {
    const char *id;
    const char *state;
};

struct ef_emr_sync_stats {
    uint64_t lists, describes;  /* actions handed out */
    size_t watched, clusters;
};

struct ef_emr_sync;

struct ef_emr_sync *ef_emr_sync_new(const struct ef_emr_sync_options *opts);
void ef_emr_sync_free(struct ef_emr_sync *s);

/* Watches a job run; returns its handle (> 0), or 0 when out of memory. */
uint64_t ef_emr_sync_watch(struct ef_emr_sync *s, const char *vc_id, const char *job_id, double now);
/* Stops watching (done, aborted, failed); unknown handles are ignored. */
void ef_emr_sync_unwatch(struct ef_emr_sync *s, uint64_t handle);
/* Asks for another describe of the job (after a failed one). */
void ef_emr_sync_redescribe(struct ef_emr_sync *s, uint64_t handle);

int ef_emr_sync_next(struct ef_emr_sync *s, double now, struct ef_emr_sync_action *a);

/* A describe answered: the job's state and creation time (Unix seconds). A final state
 * means the job is done: the caller unwatches it. */
void ef_emr_sync_described(struct ef_emr_sync *s, uint64_t handle, double now, const char *state,
                           double created_at);
/* One page of a listing answered; next_token NULL or "" ends the listing. */
void ef_emr_sync_listed(struct ef_emr_sync *s, const char *vc_id, double now,
                        const struct ef_emr_sync_item *items, size_t n, const char *next_token);
/* A listing failed: the cluster is listed again after its interval. */
void ef_emr_sync_list_failed(struct ef_emr_sync *s, const char *vc_id, double now);

void ef_emr_sync_get_stats(const struct ef_emr_sync *s, struct ef_emr_sync_stats *out);

/* 1 for COMPLETED, FAILED, CANCELLED. */
int ef_emr_sync_is_final(const char *state);

#endif
