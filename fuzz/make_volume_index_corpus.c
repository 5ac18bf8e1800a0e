/* Writes the seed corpus of fuzz/volume_index_fuzz.c. Built by hand:
 *
 *   cc -std=c11 fuzz/make_volume_index_corpus.c -o /tmp/mkcorpus && \
 *      /tmp/mkcorpus fuzz/corpus/volume_index
 *
 * Each seed is a program in the target's op encoding (see the comment at
 * the top of fuzz/volume_index_fuzz.c): clean sequences of commits, finds,
 * prunes and reads, and sequences that plant bad bytes in the store (a
 * flipped, a truncated and a version-2 meta, entries whose OffsetSet is
 * broken, keys of the wrong length) and then read and write around them,
 * and sequences in which the store lies: each way of breaking the KV
 * contract, on the store call of each operation it can reach. The other
 * files of the corpus are inputs the fuzzer found, kept for what they reach.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;
static uint8_t buf[4096];
static size_t len;

static void b(int v)
{
    if (len == sizeof buf)
        exit(1);
    buf[len++] = (uint8_t)v;
}

static void emit(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    len = 0;
}

/* ---- operands */

/* A set of up to 4 small ranges: [lo, lo + 1 + extra), lo < 64, extra < 8. */
static void ranges(int n, const int *lo, const int *extra)
{
    b(n);
    for (int i = 0; i < n; i++) {
        b(lo[i]);
        b(extra[i]);
    }
}

static void range1(int lo, int extra)
{
    ranges(1, &lo, &extra);
}

static void range2(int lo1, int x1, int lo2, int x2)
{
    int lo[2] = { lo1, lo2 }, x[2] = { x1, x2 };
    ranges(2, lo, x);
}

/* ---- ops: the low 3 bits pick the op, bit 3 the volume */

/* A commit at the next LSN with one segment. */
static void commit1(int vol, int time, int sid, int lo, int extra)
{
    b(0 | vol << 3);
    b(0); /* the next LSN */
    b(time);
    b(1);
    b(sid);
    range1(lo, extra);
}

static void commit_empty(int vol, int time)
{
    b(0 | vol << 3);
    b(0);
    b(time);
    b(0);
}

/* A group of `n` commits (segidx_volume_commit_group); each item follows:
 * item(), item_at() or item_empty(). */
static void group(int n) { b(1); b(n - 1); }

/* An item at its volume's next LSN (within the group too), one segment. */
static void item(int vol, int time, int sid, int lo, int extra)
{
    b(vol);
    b(time);
    b(1);
    b(sid);
    range1(lo, extra);
}

/* An item at LSN `lsn` (15 or less), one segment. */
static void item_at(int vol, int lsn, int time, int sid, int lo, int extra)
{
    b(0xE0 | lsn << 1 | vol);
    b(time);
    b(1);
    b(sid);
    range1(lo, extra);
}

static void item_empty(int vol, int time)
{
    b(vol);
    b(time);
    b(0);
}

/* Find at `lsn` (31 or less, or 0xFF for UINT64_MAX) over [lo, lo + 1 + extra). */
static void find(int vol, int lsn, int stop, int lo, int extra)
{
    b(2 | vol << 3);
    b(lsn);
    b(stop);
    range1(lo, extra);
}

static void prune(int vol, int keep, int report)
{
    b(4 | vol << 3 | report << 4);
    b(keep);
}

static void get(int vol) { b(5 | vol << 3 | 0 << 4); }
static void list(void) { b(5 | 1 << 4); }
static void commits(int vol) { b(5 | vol << 3 | 2 << 4); }

/* Re-point commit `lsn`'s segments picked by `mask` (0: all) onto new sids. */
static void repoint(int vol, int lsn, int mask, int salt)
{
    b(5 | vol << 3 | 3 << 4);
    b(lsn);
    b(mask);
    b(salt);
}

static void segments(void) { b(5 | 4 << 4); }

static void changed(int vol, int from, int to)
{
    b(5 | vol << 3 | 5 << 4);
    b(from);
    b(to);
}

static void reads(int vol)
{
    get(vol);
    commits(vol);
    list();
    find(vol, 0xFF, 0, 0, 7);
    find(vol, 1, 0, 0, 7);
}

/* Plant a meta under the volume's meta key: fields, then one byte flipped,
 * the length changed (len 0 keeps 48) and the checksum redone (seal). */
static void plant_meta(int vol, int ver, int flags, int lsn, int last, int keep, int pos,
                       int flip, int cut, int seal)
{
    b(6 | vol << 3);
    b(0);          /* key: the meta */
    b(1);          /* value: a meta */
    b(ver); b(flags); b(lsn); b(last); b(keep); b(7 /* time */);
    b(pos); b(flip); b(cut); b(seal);
}

/* Plant an OffsetSet [lo, lo + 1 + extra) under entry (lsn, sid). */
static void plant_entry_set(int vol, int lsn, int sid, int lo, int extra, int pos, int flip,
                            int cut, int seal)
{
    b(6 | vol << 3);
    b(1);
    b(lsn);
    b(sid);
    b(2);
    range1(lo, extra);
    b(pos); b(flip); b(cut); b(seal);
}

static void plant_entry_raw(int vol, int lsn, int sid, const char *bytes, int n)
{
    b(6 | vol << 3);
    b(1);
    b(lsn);
    b(sid);
    b(0);
    b(n);
    for (int i = 0; i < n; i++)
        b(bytes[i]);
}

/* A key of the wrong length under segments/: klen = 1 + k % 63. */
static void plant_segments_key(int vol, int lsn, int k, int vkind_offsets)
{
    b(6 | vol << 3);
    b(2);
    b(lsn);
    b(1);   /* the byte after the LSN */
    b(k);
    if (vkind_offsets) {
        b(2);
        range1(0, 3);
        b(0); b(0); b(0); b(0);
    } else {
        b(3); /* empty value */
    }
}

/* A key of the wrong length under volumes/: klen = 1 + k % 40. */
static void plant_volumes_key(int vol, int k)
{
    b(6 | vol << 3);
    b(3);
    b(0x42);
    b(k);
    b(1); /* a valid meta */
    b(1); b(1); b(3); b(9); b(0); b(1);
    b(0); b(0); b(0); b(0);
}

static void delete_key(int vol, int lsn, int sid)
{
    b(6 | vol << 3);
    b(4);
    b(lsn);
    b(sid);
}

/* ---- lies: op 7 replaces the store's lie script, one byte per store call
 * from the next one on (0: the truth). The store calls of each op: get:
 * get. commit: get, write. find: get, scan, get. prune: get, scan, write
 * (get alone when there is nothing to prune). commits: get, scan. list:
 * scan. group: a get per volume as its first item comes, a scan or
 * several for each item that closes a checkpoint round, one write. A
 * byte is kind + KINDS * q; some scan lies take one more byte. */

enum { S_FOREIGN = 1, S_REVERSED, S_SWAP, S_REPEAT, S_IGNORE_STOP, S_RC_END, S_FAIL_MID,
       S_NULL_BYTES, S_CUT_KEY, S_EMPTY_KEY, S_FLIP, S_KINDS };
enum { G_SILENT = 1, G_TWICE, G_OTHER_KEY, G_FOUND_NOT, G_RC, G_RC_AFTER, G_NULL_BYTES,
       G_CUT_KEY, G_FLIP, G_KINDS };
enum { W_FAIL = 1, W_APPLY_FAIL, W_KINDS };

/* Indexes into the target's table of lying returns. */
enum { RC_ONE, RC_THREE, RC_INT_MAX, RC_MINUS_5, RC_MINUS_22, RC_MINUS_1000, RC_INT_MIN, RC_EIO,
       RC_ENOMEM, RC_ECONFLICT, RC_ENOTFOUND, RC_ECORRUPT, RC_EFULL, RC_EINVAL, RC_EVERSION };

static int scan_lie(int kind, int q) { return kind + S_KINDS * q; }
static int get_lie(int kind, int q) { return kind + G_KINDS * q; }
static int write_lie(int kind, int rc) { return kind + W_KINDS * rc; }

static void lie(int n, const int *bytes)
{
    b(7 | n << 4);
    for (int i = 0; i < n; i++)
        b(bytes[i]);
}

/* The index reopened over the store as the other vtable version (the
 * store starts as version 2; version 1 gets no EXPECTs). */
static void other_version(void) { b(7 | 8); }

#define LIE(...)                                                                                  \
    do {                                                                                          \
        int l_[] = { __VA_ARGS__ };                                                               \
        lie((int)(sizeof l_ / sizeof l_[0]), l_);                                                 \
    } while (0)

/* A clean history of volume `vol`: five commits that overwrite each other. */
static void history(int vol)
{
    commit1(vol, 10, 1, 0, 7);  /* lsn 1: 0..7 in sid 1 */
    commit1(vol, 11, 2, 4, 3);  /* lsn 2: 4..7 in sid 2 */
    b(0 | vol << 3);            /* lsn 3: two segments */
    b(0); b(12); b(2);
    b(3); range1(0, 1);         /* sid 3: 0..1 */
    b(1); range1(10, 2);        /* sid 1 again: 10..12 */
    commit_empty(vol, 13);      /* lsn 4 */
    commit1(vol, 14, 4, 5, 0);  /* lsn 5: 5 in sid 4 */
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];

    /* ---- clean sequences */
    history(0);
    reads(0);
    for (int l = 0; l <= 6; l++)
        find(0, l, 0, 0, 7);
    find(0, 0xFF, 2, 0, 7); /* stopped after two answers */
    emit("clean-commits-finds");

    history(0);
    prune(0, 3, 1);
    find(0, 2, 0, 0, 7);    /* below the prune point */
    find(0, 3, 0, 0, 7);
    find(0, 0xFF, 0, 0, 15);
    commits(0);
    prune(0, 5, 1);
    reads(0);
    prune(0, 2, 0);         /* below: changes nothing */
    prune(0, 9, 0);         /* above the LSN */
    commit1(0, 20, 2, 0, 7);
    find(0, 0xFF, 0, 0, 15);
    emit("clean-prune");

    history(0);
    history(1);
    commit_empty(1, 30);
    list();
    prune(1, 6, 1);
    find(1, 0xFF, 0, 0, 15);
    find(0, 0xFF, 1, 0, 15);
    reads(1);
    emit("clean-two-volumes");

    /* Commits the index refuses. */
    commit1(0, 1, 1, 0, 3);
    b(0); b(0xE0 + 5); b(2); b(1); b(2); range1(0, 1);  /* lsn 5: conflict */
    b(0); b(0xE0); b(2); b(1); b(2); range1(0, 1);      /* lsn 0 */
    b(0); b(0); b(2); b(1); b(0); range1(0, 1);         /* zero sid */
    b(0); b(0); b(2); b(2); b(1); range1(0, 1); b(1); range1(8, 1); /* same sid */
    b(0); b(0); b(2); b(2); b(1); range1(0, 3); b(2); range1(2, 1); /* overlap */
    b(0); b(0); b(2); b(1); b(1); b(0);                 /* empty offsets */
    find(1, 0xFF, 0, 0, 3);                             /* unknown volume */
    prune(1, 1, 0);
    commits(1);
    get(1);
    reads(0);
    emit("clean-refused");

    /* Offsets in other containers: UINT32_MAX, above 65535, long ranges. */
    b(0); b(0); b(1); b(2);
    b(1); b(2); b(0xFD); b(10); b(0xFF); b(0);          /* sid 1: 0..4255, UINT32_MAX */
    b(2); b(1); b(0xFE); b(7);                          /* sid 2: 65543 */
    b(0); b(0); b(2); b(1); b(3); range2(0, 7, 30, 7);
    b(2); b(0xFF); b(0); b(3); b(0xFD); b(0); b(0xFF); b(0); b(0xFE); b(7);
    b(2); b(1); b(0); b(1); b(0xFD); b(255);
    prune(0, 2, 1);
    reads(0);
    emit("clean-containers");

    /* ---- planted metas */
    history(0);
    plant_meta(0, 1, 1, 5, 12, 0, 9, 0x01, 0, 0);     /* lsn byte flipped */
    reads(0);
    commit1(0, 1, 1, 0, 0);
    prune(0, 2, 1);
    emit("plant-meta-flipped");

    history(0);
    plant_meta(0, 1, 1, 5, 12, 0, 0, 0, 40, 0);       /* truncated to 40 */
    reads(0);
    commit1(0, 1, 1, 0, 0);
    emit("plant-meta-truncated");

    history(0);
    plant_meta(0, 2, 1, 5, 12, 0, 0, 0, 0, 0);        /* version 2 */
    reads(0);
    commit1(0, 1, 1, 0, 0);
    prune(0, 3, 0);
    emit("plant-meta-version2");

    history(1);
    plant_meta(1, 1, 1, 9, 12, 2, 0, 0, 0, 0);        /* valid: lsn 9, keep 2 */
    reads(1);
    prune(1, 7, 1);
    commit1(1, 1, 5, 0, 0);
    reads(1);
    emit("plant-meta-valid-ahead");

    history(0);
    plant_meta(0, 1, 3, 5, 12, 0, 0, 0, 0, 0);        /* flags & 1 is kept */
    plant_meta(0, 1, 0x82, 5, 12, 0, 0, 0, 0, 0);     /* unknown flag */
    reads(0);
    plant_meta(0, 1, 0, 5, 12, 0, 0, 0, 0, 0);        /* last_offset, never written */
    reads(0);
    plant_meta(0, 1, 1, 3, 12, 5, 0, 0, 0, 0);        /* keep_from above lsn */
    reads(0);
    plant_meta(0, 1, 1, 0, 0, 0, 0, 0, 0, 0);         /* lsn 0 */
    reads(0);
    plant_meta(0, 1, 1, 0xFF, 0, 0, 0, 0, 0, 0);      /* lsn UINT64_MAX */
    reads(0);
    commit1(0, 1, 1, 0, 0);
    emit("plant-meta-fields");

    /* ---- planted entries */
    history(0);
    plant_entry_set(0, 2, 2, 4, 3, 30, 0x10, 0, 0);    /* payload flipped, old checksum */
    reads(0);
    prune(0, 4, 1);
    emit("plant-entry-checksum");

    history(0);
    plant_entry_set(0, 3, 1, 0, 7, 33, 0x40, 0, 1);    /* flipped and resealed */
    reads(0);
    prune(0, 4, 1);
    emit("plant-entry-payload");

    history(1);
    plant_entry_set(1, 2, 2, 4, 3, 0, 0, 26, 1);       /* truncated, resealed */
    plant_entry_raw(1, 4, 9, "SXOS\x02", 5);
    reads(1);
    prune(1, 5, 1);
    emit("plant-entry-truncated");

    history(0);
    plant_entry_set(0, 20, 1, 0, 7, 0, 0, 0, 0);       /* lsn above the meta's */
    plant_entry_set(0, 2, 7, 0, 7, 0, 0, 0, 0);        /* valid, overlapping */
    find(0, 5, 0, 0, 15);
    reads(0);
    prune(0, 5, 1);
    delete_key(0, 20, 1);
    reads(0);
    prune(0, 5, 1);
    emit("plant-entry-extra");

    /* ---- keys of the wrong length */
    history(0);
    plant_segments_key(0, 2, 32, 1);                   /* 33 bytes: no sid */
    reads(0);
    prune(0, 3, 1);
    emit("plant-short-key");

    history(1);
    plant_segments_key(1, 3, 49, 1);                   /* 50 bytes */
    plant_segments_key(1, 0, 11, 0);                   /* 12 bytes */
    reads(1);
    reads(0);
    emit("plant-long-key");

    history(0);
    plant_volumes_key(0, 24);                          /* 25 bytes */
    list();
    reads(0);
    emit("plant-volumes-key");

    /* ---- deleted keys */
    history(0);
    delete_key(0, 0, 0);                               /* the meta */
    reads(0);
    commit1(0, 1, 6, 2, 1);                            /* lsn 1 again */
    reads(0);
    prune(0, 1, 1);
    emit("plant-delete-meta");

    /* ---- a lying store */

    /* Scans of a find: keys of the other volume at either end or in the
     * middle, the other direction, swapped and repeated keys, a walk that
     * ends early and a store that goes on after the stop. */
    history(0);
    history(1);
    LIE(0, scan_lie(S_FOREIGN, 0), 0, 0);          /* the neighbour, first */
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_FOREIGN, 1), 9, 0);          /* at the end */
    find(1, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_FOREIGN, 3), 2, 0);          /* further away, third */
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_REVERSED, 0), 0);
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_SWAP, 1), 0);
    find(1, 4, 0, 0, 15);
    LIE(0, scan_lie(S_REPEAT, 0), 0, 0);           /* the newest, twice in a row */
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_REPEAT, 1), 3, 0);           /* a key again, later */
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_IGNORE_STOP, 0), 0);         /* the walk ends at lsn 5 */
    find(0, 0xFF, 0, 5, 0);
    LIE(0, scan_lie(S_IGNORE_STOP, 0), 0);
    find(1, 0xFF, 1, 0, 15);                       /* and with the callback's stop */
    reads(0);
    reads(1);
    emit("hostile-scan-order");

    /* Scans that return what they must not, or hand out bad bytes. */
    history(0);
    history(1);
    LIE(0, scan_lie(S_RC_END, 1 + RC_ONE), 0);     /* positive after a whole scan */
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_RC_END, 1 + RC_MINUS_5), 0); /* -EIO */
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_RC_END, 0), 0);              /* the stop dropped */
    find(0, 0xFF, 0, 5, 0);
    LIE(0, scan_lie(S_RC_END, 1 + RC_ENOMEM), 0);  /* a code of the library's */
    find(1, 0xFF, 0, 5, 0);
    LIE(0, scan_lie(S_FAIL_MID, 2), RC_MINUS_22, 0);
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_FAIL_MID, 0), RC_INT_MIN, 0);
    find(1, 3, 0, 0, 15);
    LIE(0, scan_lie(S_NULL_BYTES, 1), 0);
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_CUT_KEY, 2), 0);
    find(0, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_EMPTY_KEY, 0), 0);
    find(1, 0xFF, 0, 0, 15);
    LIE(0, scan_lie(S_FLIP, 1), 77, 0);
    find(0, 0xFF, 0, 0, 15);
    reads(0);
    emit("hostile-scan-returns");

    /* Listings: volumes and commits, each lie on its scan. */
    history(0);
    history(1);
    LIE(scan_lie(S_FOREIGN, 0), 0);
    list();
    LIE(scan_lie(S_REVERSED, 0));
    list();
    LIE(scan_lie(S_FAIL_MID, 1), RC_EIO);
    list();
    LIE(scan_lie(S_CUT_KEY, 1));
    list();
    LIE(0, scan_lie(S_FOREIGN, 1), 200);
    commits(0);
    LIE(0, scan_lie(S_SWAP, 3));
    commits(1);
    LIE(0, scan_lie(S_REPEAT, 4), 1);
    commits(0);
    LIE(0, scan_lie(S_FAIL_MID, 3), RC_THREE);
    commits(1);
    LIE(0, scan_lie(S_RC_END, 1 + RC_MINUS_1000));
    commits(0);
    LIE(0, scan_lie(S_FLIP, 4), 3);
    commits(0);
    reads(0);
    reads(1);
    emit("hostile-scan-listings");

    /* Gets of the meta, on every call that reads it. */
    history(0);
    LIE(get_lie(G_SILENT, 0), get_lie(G_TWICE, 0), get_lie(G_OTHER_KEY, 3),
        get_lie(G_FOUND_NOT, 0), get_lie(G_RC, RC_MINUS_5), get_lie(G_RC, RC_ONE),
        get_lie(G_RC_AFTER, RC_EIO), get_lie(G_NULL_BYTES, 0), get_lie(G_CUT_KEY, 0),
        get_lie(G_FLIP, 5));
    for (int i = 0; i < 10; i++)
        get(0);
    get(1);
    LIE(get_lie(G_SILENT, 0));
    get(1);                                        /* a volume that is not there */
    LIE(get_lie(G_TWICE, 0), get_lie(G_OTHER_KEY, 0));
    get(1);
    get(1);
    LIE(get_lie(G_RC, RC_ENOTFOUND));              /* the truth, for once */
    get(1);
    LIE(0, 0, get_lie(G_SILENT, 0));               /* the check after the walk */
    find(0, 0xFF, 0, 0, 15);
    LIE(0, 0, get_lie(G_RC, RC_MINUS_22));
    find(0, 2, 0, 0, 15);
    LIE(get_lie(G_TWICE, 0));
    find(0, 0xFF, 0, 0, 15);
    LIE(get_lie(G_RC_AFTER, RC_ECORRUPT));
    commits(0);
    LIE(get_lie(G_OTHER_KEY, 7));
    commit1(0, 20, 2, 0, 3);
    LIE(get_lie(G_FLIP, 2));
    prune(0, 3, 1);
    reads(0);
    emit("hostile-get");

    /* Writes of commits: refused with every kind of return, or taken and
     * then reported failed (the model follows the store). */
    history(0);
    LIE(0, write_lie(W_FAIL, RC_ONE));
    commit1(0, 20, 1, 0, 3);
    LIE(0, write_lie(W_FAIL, RC_MINUS_5));
    commit1(0, 21, 2, 8, 3);
    LIE(0, write_lie(W_FAIL, RC_ECONFLICT), 0, 0); /* a retry that succeeds */
    commit1(0, 22, 3, 0, 3);
    LIE(0, write_lie(W_APPLY_FAIL, RC_EIO));
    commit1(0, 23, 1, 16, 3);
    LIE(0, write_lie(W_APPLY_FAIL, RC_ECONFLICT), 0);
    commit1(0, 24, 2, 2, 3);                       /* the retry finds its lsn taken */
    LIE(0, write_lie(W_APPLY_FAIL, RC_INT_MAX));
    commit_empty(0, 25);
    LIE(0, write_lie(W_FAIL, RC_ECONFLICT), 0, write_lie(W_FAIL, RC_ENOMEM));
    commit1(0, 26, 4, 30, 1);
    reads(0);
    prune(0, 6, 1);
    reads(0);
    emit("hostile-write-commit");

    /* ---- groups: several LSNs of both volumes in one write, rounds of
     * the short schedule (every other commit) closed inside the group,
     * refused groups (an LSN skipped, repeated, bad segments), reads. */
    group(8);
    item(0, 40, 1, 0, 7);       /* A 1: round 0, an image */
    item(1, 41, 2, 2, 3);       /* B 1 */
    item(0, 42, 3, 4, 3);       /* A 2 */
    item(0, 43, 4, 6, 1);       /* A 3: round 1 reads A 2 from the group */
    item_empty(1, 44);          /* B 2 */
    item(1, 45, 5, 0, 1);       /* B 3: a round */
    item(0, 46, 1, 1, 0);       /* A 4 */
    item(0, 47, 2, 3, 2);       /* A 5: round 2, deltas of two levels */
    reads(0);
    reads(1);
    group(3);
    item(1, 50, 3, 8, 3);       /* B 4 */
    item_at(1, 6, 51, 4, 9, 0); /* B 6: skipped, so the group is refused */
    item(0, 52, 5, 12, 3);
    group(2);
    item(0, 53, 1, 0, 1);       /* A 6 */
    item_at(0, 6, 54, 2, 2, 0); /* A 6 again: refused */
    group(2);
    item(1, 55, 0, 0, 1);       /* sid 0: EINVAL, named first */
    item_at(0, 9, 56, 2, 2, 0);
    group(4);
    item(1, 57, 1, 0, 3);       /* B 4 */
    item(0, 58, 2, 20, 3);      /* A 6 */
    item(0, 59, 3, 24, 3);      /* A 7: a round */
    item(1, 60, 4, 5, 0);       /* B 5: a round */
    reads(0);
    reads(1);
    changed(0, 2, 7);
    prune(0, 5, 1);
    group(2);
    item(0, 61, 4, 1, 3);       /* A 8 */
    item(0, 62, 5, 0, 0);       /* A 9: a round after the prune */
    reads(0);
    emit("clean-group");

    history(0);
    /* get A, get B, scan (A 7's round reads A 6 from the group), write:
     * refused as a conflict once, so the group reads again and retries. */
    LIE(0, 0, 0, write_lie(W_FAIL, RC_ECONFLICT), 0, 0, 0, 0);
    group(3);
    item(0, 30, 2, 8, 3);       /* A 6 */
    item(1, 31, 3, 0, 3);       /* B 1 */
    item(0, 32, 1, 2, 1);       /* A 7: a round */
    LIE(0, 0, scan_lie(S_FLIP, 1), 0, 0);
    group(3);
    item(0, 33, 4, 3, 3);       /* A 8 */
    item(0, 34, 2, 9, 2);       /* A 9: a round; the scan of A 7's delta lies */
    item(1, 35, 1, 1, 1);
    LIE(0, 0, write_lie(W_APPLY_FAIL, RC_EIO)); /* get B, get A, write */
    group(2);
    item(1, 36, 5, 5, 5);       /* B 2 */
    item(0, 37, 3, 0, 2);       /* A 8 (the group before was refused) */
    LIE(get_lie(G_SILENT, 0), 0, 0);
    group(2);
    item(0, 38, 1, 7, 1);
    item(1, 39, 4, 6, 0);
    other_version();
    group(2);
    item(0, 40, 2, 0, 4);
    item(1, 41, 2, 0, 4);
    reads(0);
    reads(1);
    emit("hostile-group");

    /* Prunes: a lying scan must never be written back, and a write taken
     * and then reported failed is followed. */
    history(0);
    history(1);
    LIE(0, scan_lie(S_FOREIGN, 1), 9, 0);
    prune(0, 4, 1);
    LIE(0, scan_lie(S_SWAP, 0), 0);
    prune(0, 4, 1);
    LIE(0, scan_lie(S_REPEAT, 2), 0, 0);
    prune(0, 4, 1);
    LIE(0, scan_lie(S_REVERSED, 0), 0);
    prune(1, 3, 1);
    LIE(0, scan_lie(S_FAIL_MID, 2), RC_MINUS_1000, 0);
    prune(1, 3, 1);
    LIE(0, 0, write_lie(W_FAIL, RC_MINUS_22));
    prune(0, 4, 1);
    LIE(0, 0, write_lie(W_APPLY_FAIL, RC_ECONFLICT), 0);
    prune(0, 3, 1);                                /* the retry finds it done */
    LIE(0, 0, write_lie(W_APPLY_FAIL, RC_EFULL));
    prune(1, 4, 1);
    LIE(0, 0, write_lie(W_FAIL, RC_ECONFLICT), 0, 0, 0);
    prune(1, 5, 1);
    reads(0);
    reads(1);
    emit("hostile-write-prune");

    /* A planted volume and a lying store together. */
    history(0);
    plant_meta(0, 1, 1, 9, 12, 0, 0, 0, 0, 0);        /* valid: lsn 9 */
    LIE(0, scan_lie(S_REVERSED, 0), 0, 0, scan_lie(S_FOREIGN, 0), 1);
    reads(0);
    LIE(0, 0, write_lie(W_APPLY_FAIL, RC_MINUS_5));
    prune(0, 4, 1);
    LIE(0, write_lie(W_FAIL, RC_EIO));
    commit1(0, 30, 5, 0, 3);
    reads(0);
    emit("hostile-planted");

    /* The same store as a version-1 vtable: writes without EXPECTs. */
    history(0);
    other_version();
    LIE(0, write_lie(W_APPLY_FAIL, RC_ECONFLICT), 0);
    commit1(0, 20, 1, 0, 3);
    LIE(0, write_lie(W_FAIL, RC_ECONFLICT), 0, 0);
    commit1(0, 21, 2, 4, 3);
    LIE(0, 0, write_lie(W_APPLY_FAIL, RC_MINUS_22));
    prune(0, 3, 1);
    LIE(0, scan_lie(S_SWAP, 0), 0);
    prune(0, 5, 1);
    reads(0);
    other_version();
    commit1(0, 22, 3, 0, 1);
    reads(0);
    emit("hostile-version1");

    /* Re-points: of whole commits and of one segment of two, again onto
     * the first names, after a prune cut the entries, of a commit with
     * none and above the head; then the referenced sids. */
    history(0);
    history(1);
    repoint(0, 1, 0, 0x10);
    repoint(0, 3, 1, 0x22);
    segments();
    reads(0);
    prune(0, 3, 1);
    repoint(0, 1, 0, 0x10);   /* back to sid 1, what the prune left of it */
    repoint(0, 3, 2, 0x30);
    repoint(0, 4, 0, 0x40);   /* the empty commit */
    repoint(0, 0xFF, 0, 0x50);
    segments();
    reads(0);
    commit1(0, 20, 2, 0, 7);
    repoint(0, 6, 0, 0x60);
    find(0, 0xFF, 0, 0, 15);
    segments();
    emit("clean-repoint");

    /* Re-points through a lying store: its meta get, its scan, its write. */
    history(0);
    LIE(get_lie(G_FLIP, 0), 0, 0);
    repoint(0, 1, 0, 0x10);
    LIE(0, scan_lie(S_FOREIGN, 1), 0);
    repoint(0, 1, 0, 0x10);
    LIE(0, scan_lie(S_REPEAT, 0), 0);
    repoint(0, 3, 0, 0x10);
    LIE(0, 0, write_lie(W_FAIL, RC_ECONFLICT), 0, 0, 0);
    repoint(0, 3, 0, 0x10);
    LIE(0, 0, write_lie(W_APPLY_FAIL, RC_MINUS_5));
    repoint(0, 2, 0, 0x20);
    LIE(scan_lie(S_FLIP, 0));
    segments();
    LIE(scan_lie(S_CUT_KEY, 1));
    segments();
    other_version();
    repoint(0, 5, 0, 0x30);
    reads(0);
    segments();
    emit("hostile-repoint");

    /* Re-points over planted entries. */
    history(0);
    plant_entry_raw(0, 3, 3, "\x01\x02\x03", 3);
    repoint(0, 3, 0, 0x10);
    plant_segments_key(0, 2, 1, 1);
    segments();
    repoint(0, 1, 0, 0x10);
    reads(0);
    emit("planted-repoint");

    /* Changed offsets: through rounds and images, after a prune, above the
     * head, below the prune point, and through a lying store. */
    history(0);
    history(1);
    for (int i = 0; i < 12; i++)
        commit1(0, 40 + i, 5 + i % 3, i * 3, i % 4);
    changed(0, 0, 0xFF);
    changed(0, 2, 9);
    changed(0, 5, 17);
    changed(0, 16, 17);
    changed(1, 1, 3);
    changed(0, 9, 2);
    prune(0, 12, 0);
    changed(0, 3, 15);
    changed(0, 3, 11);
    LIE(0, scan_lie(S_REVERSED, 0), 0);
    changed(0, 4, 16);
    LIE(get_lie(G_FLIP, 0), 0, 0, get_lie(G_TWICE, 0));
    changed(0, 1, 17);
    emit("changed");

    return 0;
}
