/* s3_segments.h: segments as S3 objects, through libcurl and its AWS
 * Signature Version 4 signing (CURLOPT_AWS_SIGV4, libcurl >= 7.75).
 *
 * One object per segment, `PREFIX/SIDHEX.seg` in one bucket, path-style
 * URLs (`ENDPOINT/BUCKET/KEY`), so it works against AWS S3, MinIO, Ceph,
 * s3rver and their kin. This file is the S3 client (PUT, GET of a range or
 * of a whole object, HEAD, DELETE) and a seg_store for segment_ranges.h,
 * which holds the read policy (tail GET, one GET per page, whole GET when
 * hot). A host's whole S3 layer:
 *
 *     curl_global_init(CURL_GLOBAL_DEFAULT);           // once per process
 *     s3_config cfg = { endpoint, bucket, region, access_key, secret_key,
 *                       "segments" };
 *     s3_client c;
 *     if (s3_client_init(&c, &cfg)) ...                // c.error says why
 *     s3_put_segment(&c, &sid, buf, len);              // from the packer's emit
 *     seg_store store = s3_segment_store(&c);
 *     seg_ranges *r;  seg_ranges_new(&store, NULL, &r);
 *     seg_ranges_read_pages(r, vi, &vid, lsn, offsets, fn, ctx);
 *     ...  seg_ranges_free(r);  s3_client_free(&c);
 *
 * Every failure leaves one line in `c.error` (method, URL, HTTP status and
 * the S3 error code when the server sent one, or curl's reason), and maps
 * to a SEGIDX_E* code: 404 is SEGIDX_ENOTFOUND, everything else
 * SEGIDX_EIO (403, 5xx, a refused connection, and any reply that breaks
 * the protocol: a 200 where a 206 was due or the reverse, a Content-Range
 * missing, malformed or not matching the body, a body shorter or longer
 * than its Content-Length). A bad reply is never handed on as bytes.
 *
 * Headers: curl 7.88 signs the request but does not send
 * `x-amz-content-sha256`, which S3 (and s3rver) require for SigV4; when
 * the caller sends it, curl signs it and uses its value as the payload
 * hash. We send `UNSIGNED-PAYLOAD` on every request: it is valid for S3
 * over any transport, needs no SHA-256 of our own (libcurl exposes none,
 * and OpenSSL would be one more library to link for an example), and it
 * loses nothing here: every segment carries XXH3 checksums over its
 * header, index and each page, and every read checks them, so a body
 * damaged between us and the store is caught where it matters. The empty
 * `Expect:` header stops curl waiting for `100 Continue` before a PUT body
 * (one round trip less per upload). Requests go one at a time over one
 * curl handle, which keeps its connection alive between them.
 *
 * Not thread-safe: one s3_client per thread. Link with -lcurl. */
#ifndef S3_SEGMENTS_H
#define S3_SEGMENTS_H

#include <segidx.h>

#include <curl/curl.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment_ranges.h"

typedef struct s3_config {
    const char *endpoint;   /* http(s)://host[:port], no trailing path */
    const char *bucket;
    const char *region;     /* NULL: us-east-1 */
    const char *access_key;
    const char *secret_key;
    const char *prefix;     /* key prefix of the segments; NULL: none */
} s3_config;

typedef struct s3_client {
    CURL *curl;
    char endpoint[512];
    char bucket[256];
    char prefix[256];
    char sigv4[128];        /* "aws:amz:REGION:s3" */
    char userpwd[512];      /* "ACCESS:SECRET" */
    char error[2048];       /* the last failure, one line */
    uint64_t requests;
    uint64_t bytes_sent;     /* bodies */
    uint64_t bytes_received; /* bodies, error bodies included */
} s3_client;

/* What one request brought back. */
struct s3_response {
    long status;            /* of the final response (not a 100 Continue) */
    uint8_t *body;
    size_t len, cap, limit; /* limit: the most body we accept */
    int too_long;
    int has_length;
    uint64_t content_length;
    int has_range, range_bad;
    uint64_t range_first, range_last, range_total;
};

/* Request bodies come from memory. */
struct s3_upload {
    const uint8_t *p;
    size_t left;
};

/* A key is written into a URL as it is: keep it to unreserved bytes. */
static inline int s3_safe_key(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("/-._~", *s))
            return 0;
    return 1;
}

static inline int s3_client_init(s3_client *c, const s3_config *cfg)
{
    memset(c, 0, sizeof *c);
    if (!cfg->endpoint || !cfg->bucket || !cfg->access_key || !cfg->secret_key) {
        snprintf(c->error, sizeof c->error,
                 "s3: endpoint, bucket, access key and secret key are required");
        return SEGIDX_EINVAL;
    }
    const char *region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
    const char *prefix = cfg->prefix ? cfg->prefix : "";
    if (!s3_safe_key(cfg->bucket) || !*cfg->bucket || !s3_safe_key(prefix) ||
        strchr(region, ':')) {
        snprintf(c->error, sizeof c->error,
                 "s3: bucket, prefix and region must be plain names ([A-Za-z0-9/._~-])");
        return SEGIDX_EINVAL;
    }
    size_t el = strlen(cfg->endpoint);
    while (el && cfg->endpoint[el - 1] == '/')
        el--;
    if ((size_t)snprintf(c->endpoint, sizeof c->endpoint, "%.*s", (int)el, cfg->endpoint) >=
            sizeof c->endpoint ||
        (size_t)snprintf(c->bucket, sizeof c->bucket, "%s", cfg->bucket) >= sizeof c->bucket ||
        (size_t)snprintf(c->prefix, sizeof c->prefix, "%s", prefix) >= sizeof c->prefix ||
        (size_t)snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", region) >=
            sizeof c->sigv4 ||
        (size_t)snprintf(c->userpwd, sizeof c->userpwd, "%s:%s", cfg->access_key,
                         cfg->secret_key) >= sizeof c->userpwd) {
        snprintf(c->error, sizeof c->error, "s3: a setting is too long");
        return SEGIDX_EINVAL;
    }
    if (!(c->curl = curl_easy_init())) {
        snprintf(c->error, sizeof c->error, "s3: curl_easy_init failed");
        return SEGIDX_ENOMEM;
    }
    return SEGIDX_OK;
}

static inline void s3_client_free(s3_client *c)
{
    if (c && c->curl) {
        curl_easy_cleanup(c->curl);
        c->curl = NULL;
    }
}

/* The object key of a segment: PREFIX/SIDHEX.seg. */
static inline void s3_segment_key(const s3_client *c, const segidx_sid *sid, char *out, size_t cap)
{
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", sid->bytes[i]);
    snprintf(out, cap, "%s%s%s.seg", c->prefix, *c->prefix ? "/" : "", hex);
}

/* ------------------------------------------------------------ parsing */

static inline int s3_parse_u64(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return 0;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *s = p;
    *out = v;
    return 1;
}

/* `name: value` (name case-insensitive): the value, or NULL. */
static inline const char *s3_header_value(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':')
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)line[i]) != name[i])
            return NULL;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    return v;
}

static inline size_t s3_on_header(char *buf, size_t size, size_t nitems, void *ctx)
{
    struct s3_response *r = ctx;
    size_t len = size * nitems;
    char line[512];
    if (len >= sizeof line)
        return len; /* no header we read is that long */
    memcpy(line, buf, len);
    line[len] = 0;
    const char *v;
    if (!strncmp(line, "HTTP/", 5)) {
        /* A new response (after a 100 Continue, say): forget the last. */
        r->has_length = r->has_range = r->range_bad = 0;
        const char *sp = strchr(line, ' ');
        uint64_t status;
        r->status = sp && (sp++, s3_parse_u64(&sp, &status)) && status < 1000 ? (long)status : 0;
    } else if ((v = s3_header_value(line, len, "content-length"))) {
        r->has_length = s3_parse_u64(&v, &r->content_length);
    } else if ((v = s3_header_value(line, len, "content-range"))) {
        /* bytes FIRST-LAST/TOTAL; anything else (`*`, other units) is bad. */
        r->has_range = 1;
        r->range_bad = !(strncmp(v, "bytes ", 6) == 0 &&
                         (v += 6, s3_parse_u64(&v, &r->range_first)) &&
                         *v++ == '-' && s3_parse_u64(&v, &r->range_last) && *v++ == '/' &&
                         s3_parse_u64(&v, &r->range_total) &&
                         r->range_first <= r->range_last && r->range_last < r->range_total);
    }
    return len;
}

static inline size_t s3_on_body(char *buf, size_t size, size_t nitems, void *ctx)
{
    struct s3_response *r = ctx;
    size_t len = size * nitems;
    if (len > r->limit - r->len) {
        r->too_long = 1;
        return 0; /* more than anyone asked for: stop the transfer */
    }
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + len)
            cap *= 2;
        if (cap > r->limit)
            cap = r->limit;
        uint8_t *p = realloc(r->body, cap);
        if (!p)
            return 0;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, buf, len);
    r->len += len;
    return len;
}

static inline size_t s3_on_read(char *buf, size_t size, size_t nitems, void *ctx)
{
    struct s3_upload *u = ctx;
    size_t n = size * nitems < u->left ? size * nitems : u->left;
    memcpy(buf, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

/* The <Code> of an S3 error body, for the message. */
static inline void s3_error_code(const struct s3_response *r, char *out, size_t cap)
{
    out[0] = 0;
    if (!r->body)
        return;
    const char *b = (const char *)r->body, *end = b + r->len;
    for (const char *p = b; p + 6 <= end; p++) {
        if (memcmp(p, "<Code>", 6))
            continue;
        const char *q = p + 6, *e = q;
        while (e < end && *e != '<' && (size_t)(e - q) + 1 < cap)
            e++;
        snprintf(out, cap, " %.*s", (int)(e - q), q);
        return;
    }
}

/* ------------------------------------------------------------ requests */

/* One request. `range` ("bytes=..." value, or NULL), `upload` (PUT body,
 * or NULL), `limit` the most body bytes accepted on success. On return the
 * response is filled, its body malloc'd (the caller frees). Returns 0 when
 * the exchange completed (whatever the status), SEGIDX_EIO when curl
 * failed (c->error says why). */
static inline int s3_request(s3_client *c, const char *method, const char *key, const char *range,
                             const void *upload, size_t upload_len, size_t limit,
                             struct s3_response *resp, char *url, size_t url_cap)
{
    memset(resp, 0, sizeof *resp);
    /* An error body is read (for its <Code>) up to 64 KiB however little
     * the success would have been. */
    resp->limit = limit < 65536 ? 65536 : limit;
    snprintf(url, url_cap, "%s/%s/%s", c->endpoint, c->bucket, key);
    CURL *h = c->curl;
    curl_easy_reset(h);
    struct curl_slist *hdr = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    struct curl_slist *more = hdr ? curl_slist_append(hdr, "Expect:") : NULL;
    if (!more) {
        curl_slist_free_all(hdr);
        snprintf(c->error, sizeof c->error, "%s %s: out of memory", method, url);
        return SEGIDX_ENOMEM;
    }
    hdr = more;
    struct s3_upload up = { upload, upload_len };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, c->sigv4);
    curl_easy_setopt(h, CURLOPT_USERPWD, c->userpwd);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, s3_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s3_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    /* curl would undo compression and make lengths lie: ask for none. */
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL);
    if (range)
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, s3_on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &up);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)upload_len);
    } else if (!strcmp(method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdr);
    c->requests++;
    c->bytes_sent += upload_len - up.left;
    c->bytes_received += resp->len;
    if (cc != CURLE_OK) {
        if (resp->too_long)
            snprintf(c->error, sizeof c->error, "%s %s: HTTP %ld: body longer than %zu bytes",
                     method, url, resp->status, resp->limit);
        else
            snprintf(c->error, sizeof c->error, "%s %s: %s", method, url,
                     curl_easy_strerror(cc));
        free(resp->body);
        resp->body = NULL;
        return SEGIDX_EIO;
    }
    return SEGIDX_OK;
}

/* A status other than the one expected: say which, with S3's code. */
static inline int s3_status_error(s3_client *c, const char *method, const char *url,
                                  struct s3_response *resp, long want)
{
    char code[128];
    s3_error_code(resp, code, sizeof code);
    if (resp->status == want || resp->status / 100 == 2)
        snprintf(c->error, sizeof c->error, "%s %s: HTTP %ld where %ld was due", method, url,
                 resp->status, want);
    else
        snprintf(c->error, sizeof c->error, "%s %s: HTTP %ld%s", method, url, resp->status,
                 code);
    free(resp->body);
    resp->body = NULL;
    return resp->status == 404 ? SEGIDX_ENOTFOUND : SEGIDX_EIO;
}

static inline int s3_put(s3_client *c, const char *key, const void *buf, size_t len)
{
    char url[1400];
    struct s3_response resp;
    int rc = s3_request(c, "PUT", key, NULL, buf, len, 0, &resp, url, sizeof url);
    if (rc)
        return rc;
    if (resp.status != 200)
        return s3_status_error(c, "PUT", url, &resp, 200);
    free(resp.body);
    return SEGIDX_OK;
}

static inline int s3_delete(s3_client *c, const char *key)
{
    char url[1400];
    struct s3_response resp;
    int rc = s3_request(c, "DELETE", key, NULL, NULL, 0, 0, &resp, url, sizeof url);
    if (rc)
        return rc;
    if (resp.status != 204 && resp.status != 200)
        return s3_status_error(c, "DELETE", url, &resp, 204);
    free(resp.body);
    return SEGIDX_OK;
}

/* The object's length, from HEAD. */
static inline int s3_head(s3_client *c, const char *key, uint64_t *len)
{
    char url[1400];
    struct s3_response resp;
    int rc = s3_request(c, "HEAD", key, NULL, NULL, 0, 0, &resp, url, sizeof url);
    if (rc)
        return rc;
    if (resp.status != 200)
        return s3_status_error(c, "HEAD", url, &resp, 200);
    free(resp.body);
    if (!resp.has_length) {
        snprintf(c->error, sizeof c->error, "HEAD %s: no Content-Length", url);
        return SEGIDX_EIO;
    }
    *len = resp.content_length;
    return SEGIDX_OK;
}

/* GET the whole object (req NULL or SEG_GET_WHOLE) or a range of it, with
 * every claim of the reply checked against the body (see the top). */
static inline int s3_get(s3_client *c, const char *key, const seg_get *req, seg_reply *rep)
{
    char url[1400], range[64] = "";
    size_t limit = SIZE_MAX;
    seg_get whole = { SEG_GET_WHOLE, 0, 0, 0 };
    if (!req)
        req = &whole;
    if (req->kind == SEG_GET_SUFFIX) {
        if (!req->n || req->n > SIZE_MAX)
            return SEGIDX_EINVAL;
        snprintf(range, sizeof range, "-%" PRIu64, req->n);
        limit = (size_t)req->n;
    } else if (req->kind == SEG_GET_RANGE) {
        if (!req->n || req->n > SIZE_MAX || req->first > UINT64_MAX - req->n)
            return SEGIDX_EINVAL;
        snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, req->first,
                 req->first + req->n - 1);
        limit = (size_t)req->n;
    }
    struct s3_response resp;
    /* A server that ignores a suffix may send more than asked: a limit
     * one byte over lets seg_ranges see that it did, from Content-Range. */
    int rc = s3_request(c, "GET", key, *range ? range : NULL, NULL, 0,
                        req->kind == SEG_GET_SUFFIX ? limit + 1 : limit, &resp, url, sizeof url);
    if (rc)
        return rc;
    const char *why = NULL;
    if (req->kind == SEG_GET_WHOLE) {
        if (resp.status != 200)
            return s3_status_error(c, "GET", url, &resp, 200);
        rep->at = 0;
        rep->total = resp.len;
    } else if (resp.status == 206) {
        if (!resp.has_range || resp.range_bad)
            why = "206 without a valid Content-Range";
        else if (resp.range_last - resp.range_first + 1 != resp.len)
            why = "Content-Range does not match the body";
        rep->at = resp.range_first;
        rep->total = resp.range_total;
    } else if (resp.status == 200 && req->kind == SEG_GET_SUFFIX) {
        /* All of an object shorter than the suffix: allowed by RFC 9110. */
        rep->at = 0;
        rep->total = resp.len;
    } else {
        return s3_status_error(c, "GET", url, &resp, 206);
    }
    if (!why && (!resp.has_length || resp.content_length != resp.len))
        why = "body length differs from Content-Length";
    if (!why && !resp.body)
        why = "empty body";
    if (why) {
        snprintf(c->error, sizeof c->error, "GET %s (range %s): HTTP %ld: %s", url,
                 *range ? range : "none", resp.status, why);
        free(resp.body);
        return SEGIDX_EIO;
    }
    rep->body = resp.body;
    rep->len = resp.len;
    return SEGIDX_OK;
}

/* ------------------------------------------------------------ segments */

static inline int s3_put_segment(s3_client *c, const segidx_sid *sid, const void *buf, size_t len)
{
    char key[400];
    s3_segment_key(c, sid, key, sizeof key);
    return s3_put(c, key, buf, len);
}

static inline int s3_store_get(void *ctx, const segidx_sid *sid, const seg_get *req, seg_reply *rep)
{
    char key[400];
    s3_segment_key(ctx, sid, key, sizeof key);
    return s3_get(ctx, key, req, rep);
}

static inline int s3_store_size(void *ctx, const segidx_sid *sid, uint64_t *len)
{
    char key[400];
    s3_segment_key(ctx, sid, key, sizeof key);
    return s3_head(ctx, key, len);
}

/* segment_ranges' store over the client; `c` must outlive its users. */
static inline seg_store s3_segment_store(s3_client *c)
{
    seg_store s = { s3_store_get, s3_store_size, c };
    return s;
}

#endif
