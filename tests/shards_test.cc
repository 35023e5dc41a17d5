// shards_test.cc — a sharded index (index/shards.c) answers as the unsharded index of the same
// documents: tests/data/papers.jsonl embedded on the CPU once whole and once as contiguous line
// ranges into shard folders (three of uneven size; one with an empty shard), then
// dre_shards_manifest_write. Dense, BM25 and hybrid results, raw FAISS searches, documents,
// vectors, chunks and dre eval's metrics are compared bit for bit; BM25's scores are also
// checked against FTS5's own bm25() and shown to differ with each shard's own statistics (so
// the comparisons can fail). Then the manifest's errors.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "index/docstore.h"
#include "index/index.h"
#include "index/shards.h"
#include "test_util.h"

namespace {

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kModel = kSource + "/models/all-MiniLM-L6-v2";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const std::string kCorpus = kSource + "/tests/data/papers.jsonl";
const std::string kQueries = kSource + "/tests/data/queries.jsonl";
const std::string kQrels = kSource + "/tests/data/qrels.tsv";
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";

// BM25 queries beyond the query set's: a repeated term (two phrases, one IDF each), a term in
// no document, terms in more than half of them (FTS5 clamps their IDF to 1e-6), no term.
const std::vector<std::string> kExtraBm25 = {"attention attention transformer", "zzyzxqv sparse",
                                             "the of and a", "!!! ???"};

std::string shard_dir(const std::string &dir, int r) {
    char name[32];
    snprintf(name, sizeof name, INDEX_SHARD_DIR_FORMAT, r);
    return dir + "/" + name;
}

int sh(const std::string &cmd, std::string *out = nullptr) {
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return -1;
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        text.append(buf, n);
    int status = pclose(p);
    if (out) *out = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Shards : public ::testing::Test {
  protected:
    static std::string tmp, full, three, with_empty, chunked_full, chunked;
    static std::vector<std::string> lines, queries;

    static void embed(const std::string &model, const std::string &corpus, const std::string &dir,
                      int32_t chunk_tokens) {
        dre_embed_options o;
        dre_embed_options_init(&o);
        o.device = DRE_DEVICE_CPU;
        o.chunk_tokens = chunk_tokens;
        dre_embed_summary summary;
        ASSERT_EQ(dre_embed(model.c_str(), corpus.c_str(), dir.c_str(), &o, &summary), DRE_OK)
            << dre_last_error();
    }

    // An index folder with no documents, as a rank with nothing to embed leaves: one document
    // embedded, then taken out of docs.sqlite (BM25 and chunks too), index.faiss and meta.json.
    static void empty_shard(const std::string &model, const std::string &dir,
                            int32_t chunk_tokens) {
        std::string one = tmp + "/one.jsonl";
        write_text(one, lines[0] + "\n");
        embed(model, one, dir, chunk_tokens);
        docstore *ds = nullptr;
        ASSERT_EQ(dre_docstore_open((dir + "/docs.sqlite").c_str(), 1, &ds), DRE_OK);
        ASSERT_EQ(dre_docstore_truncate(ds, 0), DRE_OK) << dre_last_error();
        dre_docstore_close(ds);
        dre_index_info info;
        ASSERT_EQ(dre_index_meta_read(dir.c_str(), &info), DRE_OK);
        FaissIndex *ix = nullptr;
        ASSERT_EQ(dre_index_faiss_create(info.factory, info.dim, &ix), DRE_OK);
        ASSERT_EQ(dre_index_faiss_write(ix, (dir + "/index.faiss").c_str()), DRE_OK);
        faiss_Index_free(ix);
        info.count = info.n_vectors = 0;
        ASSERT_EQ(dre_index_meta_write(dir.c_str(), &info), DRE_OK);
    }

    // Lines [ends[r-1], ends[r]) of the corpus into shard r (none: an empty shard), then the
    // manifest.
    static void make_sharded(const std::string &model, const std::string &dir,
                             const std::vector<size_t> &ends, int32_t chunk_tokens) {
        ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir;
        size_t from = 0;
        for (size_t r = 0; r < ends.size(); r++) {
            if (ends[r] == from) {
                empty_shard(model, shard_dir(dir, (int)r), chunk_tokens);
                continue;
            }
            std::string part = tmp + "/part.jsonl", text;
            for (size_t i = from; i < ends[r]; i++)
                text += lines[i] + "\n";
            write_text(part, text);
            embed(model, part, shard_dir(dir, (int)r), chunk_tokens);
            from = ends[r];
        }
        ASSERT_EQ(dre_shards_manifest_write(dir.c_str(), (int32_t)ends.size()), DRE_OK)
            << dre_last_error();
    }

    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/dre_shards_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        tmp = tmpl;
        lines = lines_of(read_text(kCorpus));
        ASSERT_EQ(lines.size(), 80u);
        dre_queries *q = nullptr;
        ASSERT_EQ(dre_queries_open(kQueries.c_str(), &q), DRE_OK) << dre_last_error();
        for (size_t i = 0; i < dre_queries_count(q); i++)
            queries.push_back(dre_queries_text(q, i));
        dre_queries_close(q);
        full = tmp + "/full";
        three = tmp + "/three";
        with_empty = tmp + "/with-empty";
        chunked_full = tmp + "/chunked-full";
        chunked = tmp + "/chunked";
        embed(kModel, kCorpus, full, 0);
        make_sharded(kModel, three, {30, 35, 80}, 0);
        make_sharded(kModel, with_empty, {41, 41, 80}, 0);
        embed(kTiny, kCorpus, chunked_full, 64);
        make_sharded(kTiny, chunked, {7, 7, 52, 80}, 64);
    }
    static void TearDownTestSuite() { sh("rm -rf '" + tmp + "'"); }
};

std::string Shards::tmp, Shards::full, Shards::three, Shards::with_empty, Shards::chunked_full,
    Shards::chunked;
std::vector<std::string> Shards::lines, Shards::queries;

dre_index *open_index(const std::string &dir) {
    dre_index *ix = nullptr;
    EXPECT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    return ix;
}

// A Flat search scores a batch's candidates again each on its own (index/vindex.c), so dense
// scores do not depend on the batch, nor on the rows beside a vector (a shard's or the whole
// index's): everything below is compared bit for bit, one query a call and 20 at once.
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same_hits(const dre_hit *a, const dre_hit *b, int32_t n, const std::string &what) {
    for (int32_t j = 0; j < n; j++) {
        SCOPED_TRACE(what + ", hit " + std::to_string(j));
        EXPECT_EQ(a[j].row, b[j].row);
        EXPECT_TRUE(same_bits(a[j].score, b[j].score)) << a[j].score << " " << b[j].score;
        EXPECT_TRUE(same_bits(a[j].dense_score, b[j].dense_score));
        EXPECT_EQ(a[j].dense_rank, b[j].dense_rank);
        EXPECT_EQ(a[j].bm25_rank, b[j].bm25_rank);
        EXPECT_TRUE(same_bits(a[j].bm25_score, b[j].bm25_score));
        EXPECT_EQ(a[j].chunk, b[j].chunk);
    }
}

// dre_search in every mode on the unsharded index and on the sharded one: the same hits, bit
// for bit, one query a call and all in one call.
void expect_same_searches(const std::string &model, const std::string &whole,
                          const std::string &sharded, const std::vector<std::string> &queries) {
    dre_searcher *a = nullptr, *b = nullptr;
    ASSERT_EQ(dre_searcher_open(whole.c_str(), model.c_str(), DRE_DEVICE_CPU, &a), DRE_OK)
        << dre_last_error();
    ASSERT_EQ(dre_searcher_open(sharded.c_str(), model.c_str(), DRE_DEVICE_CPU, &b), DRE_OK)
        << dre_last_error();
    EXPECT_GT(dre_index_get_info(dre_searcher_index(b))->n_shards, 0);
    std::vector<const char *> texts;
    for (const std::string &q : queries)
        texts.push_back(q.c_str());
    struct mode_case {
        const char *name;
        dre_search_mode mode;
        dre_fusion fusion;
    } modes[] = {{"dense", DRE_SEARCH_DENSE, DRE_FUSION_CONVEX},
                 {"bm25", DRE_SEARCH_BM25, DRE_FUSION_CONVEX},
                 {"hybrid convex", DRE_SEARCH_HYBRID, DRE_FUSION_CONVEX},
                 {"hybrid rrf", DRE_SEARCH_HYBRID, DRE_FUSION_RRF}};
    for (const mode_case &m : modes) {
        dre_search_options o;
        dre_search_options_init(&o);
        o.mode = m.mode;
        o.fusion = m.fusion;
        o.k = 20;
        o.depth = 40;
        size_t n = texts.size();
        std::vector<dre_hit> ha(n * o.k), hb(n * o.k);
        std::vector<int32_t> na(n), nb(n);
        for (size_t batch : {(size_t)1, n}) {
            for (size_t q = 0; q < n; q += batch) {
                ASSERT_EQ(dre_search(a, &texts[q], batch, &o, &ha[q * o.k], &na[q]), DRE_OK)
                    << dre_last_error();
                ASSERT_EQ(dre_search(b, &texts[q], batch, &o, &hb[q * o.k], &nb[q]), DRE_OK)
                    << dre_last_error();
            }
            for (size_t q = 0; q < n; q++) {
                ASSERT_EQ(na[q], nb[q]) << m.name << ": " << queries[q];
                expect_same_hits(&ha[q * o.k], &hb[q * o.k], na[q],
                                 std::string(m.name) + ": " + queries[q]);
            }
        }
    }
    dre_searcher_close(a);
    dre_searcher_close(b);
}

TEST_F(Shards, ManifestHoldsTheTotalsAndTheShards) {
    dre_index *ix = open_index(three);
    ASSERT_NE(ix, nullptr);
    const dre_index_info *info = dre_index_get_info(ix);
    EXPECT_EQ(info->format_version, INDEX_FORMAT_SHARDED);
    EXPECT_EQ(info->n_shards, 3);
    EXPECT_EQ(info->count, 80);
    EXPECT_EQ(info->n_vectors, 80);
    EXPECT_EQ(info->bm25, 1);
    EXPECT_TRUE(dre_shards_is_sharded(three.c_str()));
    EXPECT_FALSE(dre_shards_is_sharded(full.c_str()));
    const int64_t want_first[] = {0, 30, 35}, want_count[] = {30, 5, 45};
    for (int r = 0; r < 3; r++) {
        const char *dir = nullptr;
        int64_t first_row = -1, first_vector = -1;
        const dre_index_info *s = dre_index_shard_info(ix, r, &dir, &first_row, &first_vector);
        ASSERT_NE(s, nullptr);
        EXPECT_EQ(std::string(dir), shard_dir(three, r));
        EXPECT_EQ(first_row, want_first[r]);
        EXPECT_EQ(first_vector, want_first[r]);
        EXPECT_EQ(s->count, want_count[r]);
        EXPECT_EQ(s->n_shards, 0);
    }
    EXPECT_EQ(dre_index_shard_info(ix, 3, nullptr, nullptr, nullptr), nullptr);
    dre_index_close(ix);
    ix = open_index(full);
    EXPECT_EQ(dre_index_get_info(ix)->n_shards, 0);
    EXPECT_EQ(dre_index_shard_info(ix, 0, nullptr, nullptr, nullptr), nullptr);
    dre_index_close(ix);
}

TEST_F(Shards, SearchesEqualTheUnshardedIndex) {
    std::vector<std::string> all = queries;
    all.insert(all.end(), kExtraBm25.begin(), kExtraBm25.end());
    {
        SCOPED_TRACE("three shards");
        expect_same_searches(kModel, full, three, all);
    }
    {
        SCOPED_TRACE("an empty shard");
        expect_same_searches(kModel, full, with_empty, all);
    }
    {
        SCOPED_TRACE("chunked, an empty shard");
        expect_same_searches(kTiny, chunked_full, chunked, all);
    }
}

// dre_index_search itself: the same rows and scores, one query at a time and 20 at once (the
// BLAS path), k past the count, through dre_index_search_with.
TEST_F(Shards, RawSearchEqualsTheUnshardedIndex) {
    dre_searcher *s = nullptr;
    ASSERT_EQ(dre_searcher_open(full.c_str(), kModel.c_str(), DRE_DEVICE_CPU, &s), DRE_OK);
    std::vector<const char *> texts;
    for (const std::string &q : queries)
        texts.push_back(q.c_str());
    const int64_t n = (int64_t)texts.size(), dim = 384;
    std::vector<float> vectors(n * dim);
    ASSERT_EQ(dre_searcher_embed(s, texts.data(), n, nullptr, vectors.data(), nullptr), DRE_OK);
    dre_searcher_close(s);
    dre_index *whole = open_index(full);
    for (const std::string &dir : {three, with_empty}) {
        dre_index *sharded = open_index(dir);
        for (int32_t k : {1, 10, 80, 100}) {
            for (int64_t batch : {n, (int64_t)1}) {
                std::vector<float> sa(n * k), sb(n * k);
                std::vector<int64_t> ra(n * k), rb(n * k);
                for (int64_t q = 0; q < n; q += batch) {
                    ASSERT_EQ(dre_index_search(whole, &vectors[q * dim], batch, k, &sa[q * k],
                                               &ra[q * k]),
                              DRE_OK);
                    ASSERT_EQ(dre_index_search_with(sharded, &vectors[q * dim], batch, k, nullptr,
                                                    0, &sb[q * k], &rb[q * k]),
                              DRE_OK)
                        << dre_last_error();
                }
                for (int64_t i = 0; i < n * k; i++) {
                    ASSERT_EQ(ra[i], rb[i]) << dir << " k " << k << " at " << i;
                    if (ra[i] >= 0) ASSERT_TRUE(same_bits(sa[i], sb[i])) << dir << " k " << k;
                }
            }
        }
        dre_index_close(sharded);
    }
    dre_index_close(whole);
}

TEST_F(Shards, DocumentsVectorsAndChunksMapToGlobalRows) {
    for (auto [whole_dir, dir] :
         {std::pair{full, three}, std::pair{full, with_empty}, std::pair{chunked_full, chunked}}) {
        SCOPED_TRACE(dir);
        dre_index *whole = open_index(whole_dir), *sharded = open_index(dir);
        ASSERT_TRUE(whole && sharded);
        const dre_index_info *a = dre_index_get_info(whole), *b = dre_index_get_info(sharded);
        ASSERT_EQ(a->count, b->count);
        ASSERT_EQ(a->n_vectors, b->n_vectors);
        EXPECT_EQ(a->chunk_tokens, b->chunk_tokens);
        for (int64_t row = 0; row < a->count; row++) {
            dre_doc da, db;
            ASSERT_EQ(dre_index_doc(whole, row, &da), DRE_OK);
            ASSERT_EQ(dre_index_doc(sharded, row, &db), DRE_OK) << dre_last_error();
            EXPECT_EQ(db.row, row);
            EXPECT_STREQ(da.id, db.id);
            EXPECT_STREQ(da.title, db.title);
            EXPECT_STREQ(da.text, db.text);
            dre_doc_clear(&da);
            dre_doc_clear(&db);
        }
        dre_doc doc;
        EXPECT_EQ(dre_index_doc(sharded, a->count, &doc), DRE_ERR_INVALID_ARG);
        EXPECT_EQ(dre_index_doc(sharded, -1, &doc), DRE_ERR_INVALID_ARG);
        for (int64_t v = 0; v < a->n_vectors; v++) {
            int64_t doc_a = -1, doc_b = -2;
            int32_t chunk_a = -1, chunk_b = -2;
            ASSERT_EQ(dre_index_chunk(whole, v, &doc_a, &chunk_a), DRE_OK);
            ASSERT_EQ(dre_index_chunk(sharded, v, &doc_b, &chunk_b), DRE_OK) << dre_last_error();
            EXPECT_EQ(doc_a, doc_b) << "vector " << v;
            EXPECT_EQ(chunk_a, chunk_b) << "vector " << v;
        }
        // every vector at once, and ranges across shard boundaries
        const int64_t dim = a->dim, nv = a->n_vectors;
        std::vector<float> va(nv * dim), vb(nv * dim);
        ASSERT_EQ(dre_index_vectors(whole, 0, nv, va.data()), DRE_OK);
        ASSERT_EQ(dre_index_vectors(sharded, 0, nv, vb.data()), DRE_OK) << dre_last_error();
        EXPECT_EQ(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)), 0);
        for (int64_t first : {(int64_t)0, nv / 3, nv / 2 - 3, nv - 7}) {
            std::vector<float> part(7 * dim);
            ASSERT_EQ(dre_index_vectors(sharded, first, 7, part.data()), DRE_OK);
            EXPECT_EQ(std::memcmp(part.data(), &va[first * dim], part.size() * sizeof(float)), 0);
        }
        std::vector<float> one(dim);
        EXPECT_EQ(dre_index_vectors(sharded, nv - 1, 2, one.data()), DRE_ERR_INVALID_ARG);
        EXPECT_EQ(dre_index_flat_vectors(sharded), nullptr); // GPU searchers fall back to FAISS
        dre_index_close(whole);
        dre_index_close(sharded);
    }
}

// Rows and -bm25() straight from SQLite, as FTS5 ranks the expression dre searches.
void fts5_bm25(const std::string &index_dir, const std::string &query, std::vector<int64_t> *rows,
               std::vector<double> *scores) {
    rows->clear();
    scores->clear();
    std::string path = index_dir + "/docs.sqlite";
    docstore *ds = nullptr;
    ASSERT_EQ(dre_docstore_open(path.c_str(), 0, &ds), DRE_OK);
    char *expr = nullptr;
    ASSERT_EQ(dre_docstore_bm25_expression(ds, query.data(), query.size(), &expr), DRE_OK);
    dre_docstore_close(ds);
    std::string e = expr;
    free(expr);
    if (e.empty()) return;
    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt *s = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT rowid, bm25(docs_fts) FROM docs_fts WHERE docs_fts MATCH "
                                 "? ORDER BY bm25(docs_fts), rowid",
                                 -1, &s, nullptr),
              SQLITE_OK);
    sqlite3_bind_text(s, 1, e.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(s) == SQLITE_ROW) {
        rows->push_back(sqlite3_column_int64(s, 0));
        scores->push_back(-sqlite3_column_double(s, 1));
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
}

struct bm25_list {
    std::vector<int64_t> rows;
    std::vector<double> scores;
};

bm25_list bm25_of(dre_index *ix, const std::string &query, int32_t k) {
    bm25_list l;
    l.rows.resize(k);
    l.scores.resize(k);
    int32_t n = -1;
    EXPECT_EQ(dre_index_bm25_search(ix, query.c_str(), k, l.scores.data(), l.rows.data(), &n),
              DRE_OK)
        << dre_last_error();
    l.rows.resize(n > 0 ? n : 0);
    l.scores.resize(n > 0 ? n : 0);
    return l;
}

bool same_list(const bm25_list &a, const bm25_list &b) {
    if (a.rows != b.rows) return false;
    for (size_t i = 0; i < a.scores.size(); i++)
        if (!same_bits(a.scores[i], b.scores[i])) return false;
    return true;
}

// dre's ranking with an index's own statistics is FTS5's bm25() bit for bit (the whole index
// and each shard alone: different N, lengths and frequencies); a sharded index's equals the
// whole index's; and each shard ranked by its own statistics would not.
TEST_F(Shards, Bm25UsesStatisticsOfAllShards) {
    std::vector<std::string> all = queries;
    all.insert(all.end(), kExtraBm25.begin(), kExtraBm25.end());
    dre_index *whole = open_index(full), *sharded = open_index(three);
    std::vector<dre_index *> alone;
    for (int r = 0; r < 3; r++)
        alone.push_back(open_index(shard_dir(three, r)));
    const int64_t first_row[] = {0, 30, 35};
    int differs = 0;
    for (const std::string &q : all) {
        SCOPED_TRACE(q);
        bm25_list ref;
        fts5_bm25(full, q, &ref.rows, &ref.scores);
        bm25_list a = bm25_of(whole, q, 80), b = bm25_of(sharded, q, 80);
        EXPECT_TRUE(same_list(a, ref)) << "the whole index against FTS5's bm25()";
        EXPECT_TRUE(same_list(a, b)) << "sharded against whole";
        EXPECT_TRUE(same_list(bm25_of(sharded, q, 5), bm25_of(whole, q, 5)));
        // each shard by its own statistics: bm25() of its table, then merged
        std::vector<std::pair<double, int64_t>> merged;
        for (int r = 0; r < 3; r++) {
            bm25_list own = bm25_of(alone[r], q, 80), fts;
            fts5_bm25(shard_dir(three, r), q, &fts.rows, &fts.scores);
            EXPECT_TRUE(same_list(own, fts)) << "shard " << r << " against FTS5's bm25()";
            for (size_t j = 0; j < own.rows.size(); j++)
                merged.push_back({-own.scores[j], own.rows[j] + first_row[r]});
        }
        std::sort(merged.begin(), merged.end());
        bm25_list local;
        for (auto &[neg, row] : merged) {
            local.rows.push_back(row);
            local.scores.push_back(-neg);
        }
        differs += !same_list(local, a);
    }
    EXPECT_GE(differs, (int)queries.size()) << "per-shard statistics rank like global ones?";
    for (dre_index *ix : alone)
        dre_index_close(ix);
    dre_index_close(whole);
    dre_index_close(sharded);
}

// What a process of an MPI job does: open its own shards, sum the BM25 statistics with the
// others', search with the sums; the lists of all processes, merged, are the whole index's.
TEST_F(Shards, RunsOfShardsMergeIntoTheWholeIndexsAnswers) {
    dre_index *whole = open_index(full);
    std::vector<dre_index *> parts;
    for (int r = 0; r < 3; r++) {
        dre_index *p = nullptr;
        ASSERT_EQ(dre_index_open_shards(with_empty.c_str(), r, 1, &p), DRE_OK) << dre_last_error();
        parts.push_back(p);
    }
    dre_index *two = nullptr;
    ASSERT_EQ(dre_index_open_shards(with_empty.c_str(), 1, 2, &two), DRE_OK);
    dre_doc doc;
    EXPECT_EQ(dre_index_doc(two, 3, &doc), DRE_ERR_INVALID_ARG); // shard 0's
    EXPECT_TRUE(has(dre_last_error(), "not opened")) << dre_last_error();
    ASSERT_EQ(dre_index_doc(two, 41, &doc), DRE_OK);
    dre_doc_clear(&doc);
    dre_index_close(two);
    EXPECT_EQ(dre_index_open_shards(with_empty.c_str(), 2, 2, &two), DRE_ERR_INVALID_ARG);
    for (const std::string &q : queries) {
        SCOPED_TRACE(q);
        bm25_stats sum = {}, ref = {};
        for (dre_index *p : parts) {
            bm25_stats one;
            ASSERT_EQ(dre_index_bm25_stats(p, q.c_str(), &one), DRE_OK);
            ASSERT_EQ(dre_bm25_stats_add(&sum, &one), DRE_OK);
            dre_bm25_stats_free(&one);
        }
        ASSERT_EQ(dre_index_bm25_stats(whole, q.c_str(), &ref), DRE_OK);
        EXPECT_EQ(sum.n_rows, 80);
        EXPECT_EQ(sum.n_rows, ref.n_rows);
        EXPECT_EQ(sum.n_tokens, ref.n_tokens);
        ASSERT_EQ(sum.n_phrases, ref.n_phrases);
        for (int32_t i = 0; i < sum.n_phrases; i++)
            EXPECT_EQ(sum.phrase_rows[i], ref.phrase_rows[i]) << "phrase " << i;
        std::vector<std::pair<double, int64_t>> merged;
        for (dre_index *p : parts) {
            std::vector<double> scores(10);
            std::vector<int64_t> rows(10);
            int32_t n = 0;
            ASSERT_EQ(
                dre_index_bm25_search_stats(p, q.c_str(), &sum, 10, scores.data(), rows.data(), &n),
                DRE_OK);
            for (int32_t j = 0; j < n; j++)
                merged.push_back({-scores[j], rows[j]});
        }
        std::sort(merged.begin(), merged.end());
        merged.resize(std::min<size_t>(merged.size(), 10));
        bm25_list got, want = bm25_of(whole, q, 10);
        for (auto &[neg, row] : merged) {
            got.rows.push_back(row);
            got.scores.push_back(-neg);
        }
        EXPECT_TRUE(same_list(got, want));
        dre_bm25_stats_free(&sum);
        dre_bm25_stats_free(&ref);
    }
    for (dre_index *p : parts)
        dre_index_close(p);
    dre_index_close(whole);
}

// dre eval and dre search through the CLI: the same metrics, run file and results.
TEST_F(Shards, CliEvalSearchAndInfo) {
    ASSERT_TRUE(exists(kDre)) << kDre;
    const std::string common = " --device cpu --model '" + kModel + "' ";
    for (const char *mode : {"dense", "bm25", "hybrid"}) {
        std::string out_a, out_b;
        auto eval = [&](const std::string &ix, const std::string &run, std::string *out) {
            return sh(kDre + " eval" + common + "--per-query --mode " + mode + " --index '" + ix +
                          "' --queries '" + kQueries + "' --qrels '" + kQrels + "' --run '" + run +
                          "'",
                      out);
        };
        ASSERT_EQ(eval(full, tmp + "/a.run", &out_a), 0) << out_a;
        ASSERT_EQ(eval(three, tmp + "/b.run", &out_b), 0) << out_b;
        EXPECT_EQ(out_a, out_b) << mode;
        EXPECT_EQ(read_text(tmp + "/a.run"), read_text(tmp + "/b.run")) << mode;
        EXPECT_FALSE(read_text(tmp + "/a.run").empty());
    }
    std::string a, b;
    const std::string search =
        kDre + " search" + common + "--json -k 15 --queries '" + kQueries + "' ";
    ASSERT_EQ(sh(search + "'" + full + "'", &a), 0) << a;
    ASSERT_EQ(sh(search + "'" + with_empty + "'", &b), 0) << b;
    EXPECT_EQ(a, b);
    ASSERT_EQ(sh(kDre + " info --json '" + three + "'", &a), 0);
    EXPECT_TRUE(has(a, "\"n_shards\": 3")) << a;
    EXPECT_TRUE(has(a, "\"count\": 80")) << a;
    EXPECT_TRUE(has(a, "shard-00002")) << a;
    ASSERT_EQ(sh(kDre + " info '" + three + "'", &a), 0);
    EXPECT_TRUE(has(a, "shards       3")) << a;
    ASSERT_EQ(sh(kDre + " export '" + full + "' '" + tmp + "/a.npy'", &a), 0) << a;
    ASSERT_EQ(sh(kDre + " export '" + three + "' '" + tmp + "/b.npy'", &b), 0) << b;
    EXPECT_EQ(read_text(tmp + "/a.npy"), read_text(tmp + "/b.npy"));
}

TEST_F(Shards, ManifestErrors) {
    const std::string bad = tmp + "/bad";
    ASSERT_EQ(sh("rm -rf '" + bad + "' && cp -r '" + three + "' '" + bad + "'"), 0);
    // a shard embedded with another factory
    std::string meta = shard_dir(bad, 2) + "/meta.json";
    std::string text = read_text(meta), good = text;
    size_t at = text.find("\"Flat\"");
    ASSERT_NE(at, std::string::npos);
    write_text(meta, text.replace(at, 6, "\"HNSW32\""));
    EXPECT_EQ(dre_shards_manifest_write(bad.c_str(), 3), DRE_ERR_MISMATCH);
    std::string err = dre_last_error();
    EXPECT_TRUE(has(err, shard_dir(bad, 0)) && has(err, shard_dir(bad, 2)) && has(err, "factory"))
        << err;
    // ... which opening the index notices too (the manifest says Flat)
    dre_index *ix = nullptr;
    EXPECT_EQ(dre_index_open(bad.c_str(), &ix), DRE_ERR_MISMATCH);
    EXPECT_TRUE(has(dre_last_error(), "factory")) << dre_last_error();
    write_text(meta, good);
    // a shard missing
    EXPECT_NE(dre_shards_manifest_write(bad.c_str(), 4), DRE_OK);
    EXPECT_TRUE(has(dre_last_error(), shard_dir(bad, 3))) << dre_last_error();
    ASSERT_EQ(rename(shard_dir(bad, 1).c_str(), (bad + "/elsewhere").c_str()), 0);
    EXPECT_NE(dre_index_open(bad.c_str(), &ix), DRE_OK);
    err = dre_last_error();
    EXPECT_TRUE(has(err, "shard 1 of 3") && has(err, shard_dir(bad, 1))) << err;
    ASSERT_EQ(rename((bad + "/elsewhere").c_str(), shard_dir(bad, 1).c_str()), 0);
    // counts that disagree with a shard's
    std::string manifest = read_text(bad + "/meta.json");
    ASSERT_EQ(dre_shards_manifest_write(bad.c_str(), 2), DRE_OK); // shards 0 and 1 alone
    ix = nullptr;
    ASSERT_EQ(dre_index_open(bad.c_str(), &ix), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_index_get_info(ix)->count, 35);
    dre_index_close(ix);
    text = manifest;
    at = text.find("\"count\":\t5");
    ASSERT_NE(at, std::string::npos) << text;
    write_text(bad + "/meta.json", text.replace(at, 10, "\"count\":\t6"));
    EXPECT_NE(dre_index_open(bad.c_str(), &ix), DRE_OK); // the totals no longer add up
    EXPECT_TRUE(has(dre_last_error(), "meta.json")) << dre_last_error();
    // shards but no manifest: a sharded embed that has not finished is no index
    ASSERT_EQ(unlink((bad + "/meta.json").c_str()), 0);
    EXPECT_FALSE(dre_shards_is_sharded(bad.c_str()));
    EXPECT_NE(dre_index_open(bad.c_str(), &ix), DRE_OK);
    EXPECT_TRUE(has(dre_last_error(), "no manifest")) << dre_last_error();
    // a shard's meta.json is no manifest, and a manifest is no shard's meta.json
    dre_index_info info;
    ASSERT_EQ(dre_shards_manifest_write(bad.c_str(), 3), DRE_OK);
    EXPECT_EQ(dre_index_meta_read(bad.c_str(), &info), DRE_ERR_UNSUPPORTED);
    EXPECT_TRUE(has(dre_last_error(), "sharded")) << dre_last_error();
    EXPECT_EQ(dre_shards_manifest_write(bad.c_str(), 0), DRE_ERR_INVALID_ARG);
}

} // namespace
