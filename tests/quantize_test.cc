// quantize_test.cc — quantized indexes (dre index import / dre embed --quantize): sign bits as
// sentence-transformers packs them, int8 ranges and codes as FAISS SQ8 makes them, binary and
// SQ8 candidates as FAISS's own indexes find them, rescoring exactly as FAISS decodes (against
// tests/fixtures/quantized_reference.json, from tools/fixtures/make_quantized_fixtures.py), the
// rescoring vectors memory-mapped (RSS measured), import and export round trips, --append, and
// the errors.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "dre.h"
#include "index/hamming.h"
#include "index/rescore.h"
#include "index/vindex.h"
#include "model/sha256.h"
#include "test_util.h"

using namespace test_util;

namespace {

const std::string kSource = DRE_SOURCE_DIR;
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const std::string kDemo = kSource + "/tests/data/papers.jsonl";

// ---------------------------------------------------------------- the vectors

// The draws of tools/fixtures/make_quantized_fixtures.py (its docstring says how).
struct Draws {
    uint64_t state;
    uint64_t next() {
        state += 0x9E3779B97F4A7C15ull;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    int whole(int a) { return (int)(next() % (uint64_t)(2 * a + 1)) - a; }
};

struct Data {
    int n, dim, nq, k, factor;
    std::vector<float> x, q;
};

Data draw(int n, int dim, int nq, int n_clusters, uint64_t seed) {
    Data d{n, dim, nq, 10, 4, {}, {}};
    Draws r{seed};
    std::vector<std::vector<int>> centres(n_clusters, std::vector<int>(dim));
    for (auto &c : centres)
        for (int &v : c)
            v = r.whole(64);
    std::vector<int> docs((size_t)n * dim), queries((size_t)nq * dim);
    for (int i = 0; i < n; i++) {
        int *row = &docs[(size_t)i * dim];
        if (i % 10 == 9) {
            for (int j = 0; j < dim; j++)
                row[j] = row[j - dim] + r.whole(1);
        } else {
            const auto &c = centres[r.next() % (uint64_t)n_clusters];
            for (int j = 0; j < dim; j++)
                row[j] = c[j] + r.whole(48);
        }
    }
    for (int i = 0; i < nq; i++) {
        const auto &c = centres[r.next() % (uint64_t)n_clusters];
        for (int j = 0; j < dim; j++)
            queries[(size_t)i * dim + j] = c[j] + r.whole(64);
    }
    for (int v : docs)
        d.x.push_back((float)v / 128.0f);
    for (int v : queries)
        d.q.push_back((float)v / 128.0f);
    return d;
}

void write_npy(const std::string &path, const std::vector<float> &x, int rows, int cols) {
    char dict[128];
    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
             rows, cols);
    std::string header = dict;
    while ((10 + header.size() + 1) % 64 != 0)
        header += ' ';
    header += '\n';
    std::ofstream f(path, std::ios::binary);
    f.write("\x93NUMPY\x01\x00", 8);
    const uint16_t len = (uint16_t)header.size();
    f.write((const char *)&len, 2);
    f << header;
    f.write((const char *)x.data(), (std::streamsize)(x.size() * sizeof(float)));
}

void write_docs(const std::string &path, int n) {
    std::string text;
    for (int i = 0; i < n; i++)
        text += "{\"_id\": \"d" + std::to_string(i) + "\", \"text\": \"document " +
                std::to_string(i) + "\"}\n";
    write_text(path, text);
}

double dot(const float *a, const float *b, int dim) {
    double s = 0;
    for (int j = 0; j < dim; j++)
        s += (double)a[j] * b[j];
    return s;
}

// ---------------------------------------------------------------- the reference

struct Ranked {
    std::vector<std::vector<int64_t>> ids;
    std::vector<std::vector<double>> scores;
};

std::vector<std::vector<double>> matrix(const cJSON *m) {
    std::vector<std::vector<double>> out;
    const cJSON *row, *v;
    cJSON_ArrayForEach(row, m) {
        out.emplace_back();
        cJSON_ArrayForEach(v, row) out.back().push_back(v->valuedouble);
    }
    return out;
}

std::vector<std::vector<int64_t>> ids_of(const cJSON *m) {
    std::vector<std::vector<int64_t>> out;
    for (const auto &row : matrix(m))
        out.emplace_back(row.begin(), row.end());
    return out;
}

std::vector<double> numbers(const cJSON *a) {
    std::vector<double> out;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) out.push_back(v->valuedouble);
    return out;
}

std::vector<bool> flags(const cJSON *a) {
    std::vector<bool> out;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) out.push_back(cJSON_IsTrue(v));
    return out;
}

Ranked rescored(const cJSON *list) {
    Ranked r;
    const cJSON *q;
    cJSON_ArrayForEach(q, list) {
        r.ids.emplace_back();
        r.scores.push_back(numbers(cJSON_GetObjectItem(q, "scores")));
        for (double id : numbers(cJSON_GetObjectItem(q, "ids")))
            r.ids.back().push_back((int64_t)id);
    }
    return r;
}

class QuantizeTest : public ::testing::Test {
  protected:
    static cJSON *ref;
    static Data data;
    static std::string shared; // the vectors and documents, written once
    std::string dir;

    static void SetUpTestSuite() {
        ref = cJSON_Parse(read_text(kSource + "/tests/fixtures/quantized_reference.json").c_str());
        ASSERT_NE(ref, nullptr) << "tests/fixtures/quantized_reference.json";
        auto num = [](const char *key) { return (int)cJSON_GetObjectItem(ref, key)->valuedouble; };
        data = draw(num("n"), num("dim"), num("n_queries"), num("n_clusters"),
                    (uint64_t)num("seed"));
        data.k = num("k");
        data.factor = num("factor");
        char tmpl[] = "/tmp/dre_quantize_shared_XXXXXX";
        shared = mkdtemp(tmpl);
        write_npy(shared + "/x.npy", data.x, data.n, data.dim);
        write_docs(shared + "/docs.jsonl", data.n);
    }
    static void TearDownTestSuite() {
        cJSON_Delete(ref);
        ASSERT_EQ(0, std::system(("rm -rf '" + shared + "'").c_str()));
    }
    void SetUp() override {
        char tmpl[] = "/tmp/dre_quantize_XXXXXX";
        dir = mkdtemp(tmpl);
    }
    void TearDown() override { ASSERT_EQ(0, std::system(("rm -rf '" + dir + "'").c_str())); }

    const cJSON *section(const char *name) { return cJSON_GetObjectItem(ref, name); }

    // Imports the drawn vectors into dir/name with this quantization.
    std::string import(const std::string &name, dre_quantize q, dre_rescore r,
                       const char *factory = nullptr) {
        dre_import_options o;
        dre_import_options_init(&o);
        o.quantize = q;
        o.rescore = r;
        o.factory = factory;
        o.no_bm25 = 1;
        const std::string ix = dir + "/" + name;
        EXPECT_EQ(dre_index_import((shared + "/x.npy").c_str(), (shared + "/docs.jsonl").c_str(),
                                   ix.c_str(), &o, nullptr),
                  DRE_OK)
            << dre_last_error();
        return ix;
    }

    // Every query searched: k results from factor x k candidates (factor 0: the codes alone).
    void search(dre_index *ix, int k, int factor, std::vector<float> &scores,
                std::vector<int64_t> &rows) {
        dre_search_param p = {"rescore_factor", (double)factor};
        scores.assign((size_t)data.nq * k, 0);
        rows.assign((size_t)data.nq * k, 0);
        ASSERT_EQ(dre_index_search_with(ix, data.q.data(), data.nq, k, &p, 1, scores.data(),
                                        rows.data()),
                  DRE_OK)
            << dre_last_error();
    }

    // Rescoring is exact: each result's score is q . its decoded vector, the results are the
    // best k of the candidates (factor 0's top k x factor) by that score, equal scores by row.
    void expect_exact_rescoring(dre_index *ix, const std::vector<float> &decoded) {
        const int k = data.k, kc = data.k * data.factor, dim = data.dim;
        std::vector<float> cs, rs;
        std::vector<int64_t> cr, rr;
        search(ix, kc, 0, cs, cr);
        search(ix, k, data.factor, rs, rr);
        for (int i = 0; i < data.nq; i++) {
            const float *q = &data.q[(size_t)i * dim];
            std::vector<std::pair<double, int64_t>> want;
            for (int j = 0; j < kc; j++) {
                const int64_t row = cr[(size_t)i * kc + j];
                want.push_back({-dot(q, &decoded[(size_t)row * dim], dim), row});
            }
            std::sort(want.begin(), want.end());
            for (int j = 0; j < k; j++) {
                const int64_t row = rr[(size_t)i * k + j];
                ASSERT_GE(row, 0);
                const double exact = dot(q, &decoded[(size_t)row * dim], dim);
                EXPECT_NEAR(rs[(size_t)i * k + j], exact, 2e-6 * std::max(1.0, std::fabs(exact)))
                    << "query " << i << " rank " << j;
                // the same row, or one whose score is within float rounding of it
                if (row != want[j].second)
                    EXPECT_NEAR(-want[j].first, exact, 4e-6 * std::max(1.0, std::fabs(exact)))
                        << "query " << i << " rank " << j << ": row " << row << ", not "
                        << want[j].second;
            }
        }
    }

    // A rescored search equals the reference's where FAISS's candidates were not cut in a tie.
    void expect_reference(dre_index *ix, const Ranked &want, const std::vector<bool> &tied,
                          int *compared) {
        std::vector<float> scores;
        std::vector<int64_t> rows;
        search(ix, data.k, data.factor, scores, rows);
        *compared = 0;
        for (int i = 0; i < data.nq; i++) {
            if (tied[i]) continue;
            ++*compared;
            for (int j = 0; j < data.k; j++) {
                EXPECT_EQ(rows[(size_t)i * data.k + j], want.ids[i][j])
                    << "query " << i << " rank " << j;
                EXPECT_NEAR(scores[(size_t)i * data.k + j], want.scores[i][j],
                            2e-6 * std::max(1.0, std::fabs(want.scores[i][j])));
            }
        }
    }

    // The rescoring file's decoded rows.
    std::vector<float> decoded(dre_index *ix) {
        std::vector<float> out((size_t)data.n * data.dim);
        EXPECT_EQ(dre_index_vectors(ix, 0, data.n, out.data()), DRE_OK) << dre_last_error();
        return out;
    }
};

cJSON *QuantizeTest::ref = nullptr;
Data QuantizeTest::data;
std::string QuantizeTest::shared;

// ---------------------------------------------------------------- codes

TEST_F(QuantizeTest, SignBitsArePackedAsSentenceTransformersPacksThem) {
    std::vector<uint8_t> codes((size_t)data.n * data.dim / 8);
    dre_vindex_pack_signs(data.x.data(), data.n, data.dim, codes.data());
    char hex[65];
    dre_sha256_hex(codes.data(), codes.size(), hex);
    const cJSON *c = section("codes");
    EXPECT_STREQ(hex, cJSON_GetObjectItem(c, "sha256")->valuestring);
    const cJSON *first = cJSON_GetObjectItem(c, "first");
    for (int i = 0; i < 3; i++) {
        std::string h;
        for (int j = 0; j < data.dim / 8; j++) {
            char b[3];
            snprintf(b, sizeof b, "%02x", codes[(size_t)i * data.dim / 8 + j]);
            h += b;
        }
        EXPECT_EQ(h, cJSON_GetArrayItem(first, i)->valuestring) << "row " << i;
    }
}

// dre's Hamming scan (what BFlat indexes are searched with) on every path this CPU has:
// the brute-force answer, equal distances by row, for code sizes that are and are not whole
// 64-bit words, k below, at and above the count, and codes drawn from few values (many ties).
TEST_F(QuantizeTest, HammingScanEqualsBruteForceOnEveryPath) {
    const int n = 2100, nq = 37;
    Draws r{99};
    int paths_run = 0;
    for (int path = HAMMING_PORTABLE; path <= HAMMING_AVX512; path++) {
        if (path > dre_hamming_best_path()) {
            printf("path %s: this CPU lacks it\n", dre_hamming_path_name((hamming_path)path));
            continue;
        }
        paths_run++;
        for (int bytes : {1, 4, 8, 12, 48, 100}) {
            for (int few_values : {0, 1}) {
                std::vector<uint8_t> codes((size_t)n * bytes), queries((size_t)nq * bytes);
                for (auto &c : codes)
                    c = (uint8_t)(few_values ? (r.next() % 3) * 85 : r.next());
                for (auto &c : queries)
                    c = (uint8_t)(few_values ? (r.next() % 3) * 85 : r.next());
                for (int k : {1, 10, 50, n, n + 7}) {
                    std::vector<int32_t> d((size_t)nq * k);
                    std::vector<int64_t> rows((size_t)nq * k);
                    dre_hamming_knn(codes.data(), n, bytes, queries.data(), nq, k,
                                    (hamming_path)path, d.data(), rows.data());
                    for (int i = 0; i < nq; i++) {
                        std::vector<std::pair<int32_t, int64_t>> all;
                        for (int j = 0; j < n; j++) {
                            int32_t h = 0;
                            for (int b = 0; b < bytes; b++)
                                h += __builtin_popcount(codes[(size_t)j * bytes + b] ^
                                                        queries[(size_t)i * bytes + b]);
                            all.push_back({h, j});
                        }
                        std::sort(all.begin(), all.end());
                        for (int j = 0; j < k; j++) {
                            const auto want = j < n ? all[j] : std::make_pair(INT32_MAX, (int64_t)-1);
                            ASSERT_EQ(d[(size_t)i * k + j], want.first)
                                << dre_hamming_path_name((hamming_path)path) << " bytes " << bytes
                                << " k " << k << " query " << i << " rank " << j;
                            ASSERT_EQ(rows[(size_t)i * k + j], want.second)
                                << dre_hamming_path_name((hamming_path)path) << " bytes " << bytes
                                << " k " << k << " query " << i << " rank " << j;
                        }
                    }
                }
            }
        }
    }
    EXPECT_GE(paths_run, 2);
}

// A binary HNSW index is FAISS's to search (its parameters too): with a wide efSearch, its
// rescored answers are nearly BFlat's (dre's exact scan).
TEST_F(QuantizeTest, BinaryHnswIsSearchedByFaiss) {
    dre_index *flat = nullptr, *hnsw = nullptr;
    ASSERT_EQ(dre_index_open(import("b", DRE_QUANTIZE_BINARY, DRE_RESCORE_FP32).c_str(), &flat),
              DRE_OK);
    ASSERT_EQ(dre_index_open(import("bh", DRE_QUANTIZE_BINARY, DRE_RESCORE_FP32, "BHNSW16").c_str(),
                             &hnsw),
              DRE_OK)
        << dre_last_error();
    const int k = data.k;
    std::vector<float> sf, sh;
    std::vector<int64_t> rf, rh;
    search(flat, k, data.factor, sf, rf);
    dre_search_param p = {"efSearch", 256};
    sh.resize(sf.size());
    rh.resize(rf.size());
    ASSERT_EQ(dre_index_search_with(hnsw, data.q.data(), data.nq, k, &p, 1, sh.data(), rh.data()),
              DRE_OK)
        << dre_last_error();
    int agree = 0;
    for (int i = 0; i < data.nq; i++)
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++)
                agree += rh[(size_t)i * k + a] == rf[(size_t)i * k + b];
    printf("BHNSW16 (efSearch 256) and BFlat agree on %d of %d results\n", agree, data.nq * k);
    EXPECT_GE(agree, data.nq * k * 9 / 10);
    dre_search_param bad = {"nprobe", 4};
    EXPECT_EQ(dre_index_search_with(hnsw, data.q.data(), 1, 1, &bad, 1, sh.data(), rh.data()),
              DRE_ERR_INVALID_ARG);
    dre_index_close(flat);
    dre_index_close(hnsw);
}

TEST_F(QuantizeTest, Int8RangesAndCodesAreFaissSq8s) {
    const std::string ix = import("b", DRE_QUANTIZE_BINARY, DRE_RESCORE_INT8);
    const std::string path = ix + "/" INDEX_RESCORE_INT8_FILE;
    rescore_vectors *r = nullptr;
    ASSERT_EQ(dre_rescore_open(path.c_str(), DRE_RESCORE_INT8, data.dim, data.n, &r), DRE_OK)
        << dre_last_error();
    const float *vmin, *vdiff;
    ASSERT_EQ(dre_rescore_ranges(r, &vmin, &vdiff), DRE_OK);
    const auto want_min = numbers(cJSON_GetObjectItem(section("sq8"), "vmin"));
    const auto want_diff = numbers(cJSON_GetObjectItem(section("sq8"), "vdiff"));
    ASSERT_EQ((int)want_min.size(), data.dim);
    for (int j = 0; j < data.dim; j++) {
        EXPECT_EQ(vmin[j], (float)want_min[j]) << "dimension " << j;
        EXPECT_EQ(vdiff[j], (float)want_diff[j]) << "dimension " << j;
    }
    dre_rescore_close(r);
    // the codes: the file's rows, after its header
    const std::string file = read_text(path);
    const size_t rows_bytes = (size_t)data.n * data.dim;
    ASSERT_GE(file.size(), rows_bytes);
    char hex[65];
    dre_sha256_hex(file.data() + file.size() - rows_bytes, rows_bytes, hex);
    EXPECT_STREQ(hex, cJSON_GetObjectItem(section("sq8"), "codes_sha256")->valuestring);
}

// ---------------------------------------------------------------- search

TEST_F(QuantizeTest, BinaryCandidatesAreFaissBinaryFlats) {
    const std::string path = import("b", DRE_QUANTIZE_BINARY, DRE_RESCORE_INT8);
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(path.c_str(), &ix), DRE_OK) << dre_last_error();
    const int kc = data.k * data.factor;
    std::vector<float> scores;
    std::vector<int64_t> rows;
    search(ix, kc, 0, scores, rows);
    const auto want_d = matrix(cJSON_GetObjectItem(section("binary"), "distances"));
    const auto want_i = ids_of(cJSON_GetObjectItem(section("binary"), "ids"));
    for (int i = 0; i < data.nq; i++) {
        const double cut = want_d[i][kc - 1];
        std::multiset<int64_t> got_below, want_below;
        for (int j = 0; j < kc; j++) {
            // the score is the sign vectors' cosine, (dim - 2 Hamming) / dim
            const double hamming = (data.dim - (double)scores[(size_t)i * kc + j] * data.dim) / 2;
            EXPECT_NEAR(hamming, want_d[i][j], 1e-3) << "query " << i << " rank " << j;
            if (want_d[i][j] < cut) {
                got_below.insert(rows[(size_t)i * kc + j]);
                want_below.insert(want_i[i][j]);
            }
        }
        EXPECT_EQ(got_below, want_below) << "query " << i << ": the ids before the cut's distance";
    }
    dre_index_close(ix);
}

TEST_F(QuantizeTest, BinaryRescoredFromInt8EqualsTheReference) {
    const std::string path = import("b", DRE_QUANTIZE_BINARY, DRE_RESCORE_INT8);
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(path.c_str(), &ix), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_index_get_info(ix)->rescore_factor, DRE_DEFAULT_RESCORE_FACTOR);
    int compared = 0;
    expect_reference(ix, rescored(section("binary_int8")),
                     flags(cJSON_GetObjectItem(section("binary"), "tied_at_cut")), &compared);
    EXPECT_GE(compared, 5) << "too few queries without a Hamming tie at the cut to compare";
    expect_exact_rescoring(ix, decoded(ix));
    dre_index_close(ix);
}

TEST_F(QuantizeTest, BinaryRescoredFromFp32EqualsTheReference) {
    const std::string path = import("b", DRE_QUANTIZE_BINARY, DRE_RESCORE_FP32);
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(path.c_str(), &ix), DRE_OK) << dre_last_error();
    const auto vectors = decoded(ix);
    EXPECT_EQ(memcmp(vectors.data(), data.x.data(), vectors.size() * sizeof(float)), 0)
        << "fp32 rescoring vectors are the vectors themselves";
    int compared = 0;
    expect_reference(ix, rescored(section("binary_fp32")),
                     flags(cJSON_GetObjectItem(section("binary"), "tied_at_cut")), &compared);
    EXPECT_GE(compared, 5);
    expect_exact_rescoring(ix, vectors);
    dre_index_close(ix);
}

TEST_F(QuantizeTest, Int8CandidatesAreFaissSq8sRescoredFromFp32) {
    const std::string path = import("i", DRE_QUANTIZE_INT8, DRE_RESCORE_NONE);
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(path.c_str(), &ix), DRE_OK) << dre_last_error();
    EXPECT_STREQ(dre_index_get_info(ix)->factory, "SQ8");
    EXPECT_EQ(dre_index_get_info(ix)->rescore, DRE_RESCORE_FP32);
    const int kc = data.k * data.factor;
    std::vector<float> scores;
    std::vector<int64_t> rows;
    search(ix, kc, 0, scores, rows); // FAISS SQ8's own search, through dre
    const auto want_s = matrix(cJSON_GetObjectItem(section("sq8"), "scores"));
    const auto want_i = ids_of(cJSON_GetObjectItem(section("sq8"), "ids"));
    const auto tied = flags(cJSON_GetObjectItem(section("sq8"), "tied_at_cut"));
    for (int i = 0; i < data.nq; i++)
        for (int j = 0; j < kc && !tied[i]; j++) {
            EXPECT_EQ(rows[(size_t)i * kc + j], want_i[i][j]) << "query " << i << " rank " << j;
            EXPECT_NEAR(scores[(size_t)i * kc + j], want_s[i][j], 1e-5 * std::fabs(want_s[i][j]));
        }
    int compared = 0;
    expect_reference(ix, rescored(section("int8_fp32")), tied, &compared);
    EXPECT_EQ(compared, data.nq - (int)std::count(tied.begin(), tied.end(), true));
    expect_exact_rescoring(ix, decoded(ix));
    dre_index_close(ix);
}

TEST_F(QuantizeTest, ARequestsRescoreFactorIsItsAlone) {
    const std::string path = import("b", DRE_QUANTIZE_BINARY, DRE_RESCORE_INT8);
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(path.c_str(), &ix), DRE_OK) << dre_last_error();
    std::vector<float> a, b, c;
    std::vector<int64_t> ra, rb, rc;
    search(ix, data.k, DRE_DEFAULT_RESCORE_FACTOR, a, ra);
    search(ix, data.k, 50, b, rb); // wider: at least as good a top k
    std::vector<float> plain((size_t)data.nq * data.k);
    std::vector<int64_t> plain_rows(plain.size());
    ASSERT_EQ(dre_index_search(ix, data.q.data(), data.nq, data.k, plain.data(), plain_rows.data()),
              DRE_OK);
    EXPECT_EQ(plain_rows, ra) << "a later search is back to the index's factor";
    double sum_a = 0, sum_b = 0;
    for (size_t i = 0; i < a.size(); i++) {
        sum_a += a[i];
        sum_b += b[i];
    }
    EXPECT_GT(sum_b, sum_a) << "more candidates rescored found better results";
    dre_search_param bad = {"rescore_factor", 1.5};
    EXPECT_EQ(dre_index_search_with(ix, data.q.data(), 1, 3, &bad, 1, plain.data(),
                                    plain_rows.data()),
              DRE_ERR_INVALID_ARG);
    EXPECT_TRUE(has(dre_last_error(), "whole number"));
    dre_index_close(ix);
}

// ---------------------------------------------------------------- files

TEST_F(QuantizeTest, ExportThenImportSearchesTheSame) {
    const std::string flat = import("flat", DRE_QUANTIZE_NONE, DRE_RESCORE_NONE);
    const std::string npy = dir + "/exported.npy";
    ASSERT_EQ(0, std::system((kDre + " export '" + flat + "' '" + npy + "' 2>/dev/null").c_str()));
    dre_import_options o;
    dre_import_options_init(&o);
    o.no_bm25 = 1;
    const std::string again = dir + "/again";
    ASSERT_EQ(dre_index_import(npy.c_str(), (shared + "/docs.jsonl").c_str(), again.c_str(), &o,
                               nullptr),
              DRE_OK)
        << dre_last_error();
    dre_index *a = nullptr, *b = nullptr;
    ASSERT_EQ(dre_index_open(flat.c_str(), &a), DRE_OK);
    ASSERT_EQ(dre_index_open(again.c_str(), &b), DRE_OK);
    std::vector<float> sa, sb;
    std::vector<int64_t> ra, rb;
    sa.resize((size_t)data.nq * data.k);
    sb.resize(sa.size());
    ra.resize(sa.size());
    rb.resize(sa.size());
    ASSERT_EQ(dre_index_search(a, data.q.data(), data.nq, data.k, sa.data(), ra.data()), DRE_OK);
    ASSERT_EQ(dre_index_search(b, data.q.data(), data.nq, data.k, sb.data(), rb.data()), DRE_OK);
    EXPECT_EQ(ra, rb);
    EXPECT_EQ(memcmp(sa.data(), sb.data(), sa.size() * sizeof(float)), 0);
    // and Flat's own answers are the reference's exact ones
    const auto want = ids_of(cJSON_GetObjectItem(section("flat"), "ids"));
    for (int i = 0; i < data.nq; i++)
        EXPECT_EQ(std::vector<int64_t>(ra.begin() + i * data.k, ra.begin() + (i + 1) * data.k),
                  want[i])
            << "query " << i;
    dre_doc doc;
    ASSERT_EQ(dre_index_doc(b, 17, &doc), DRE_OK);
    EXPECT_STREQ(doc.id, "d17");
    dre_doc_clear(&doc);
    dre_index_close(a);
    dre_index_close(b);
}

// RSS in bytes, from /proc/self/status.
long long rss_bytes() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
    return -1;
}

TEST_F(QuantizeTest, RescoringVectorsAreMappedNotRead) {
    // 100,000 x 384: 154 MB of fp32 rescoring vectors beside 4.8 MB of sign bits
    const int n = 100000, dim = 384;
    Data big = draw(n, dim, 32, 64, 7);
    write_npy(dir + "/big.npy", big.x, n, dim);
    write_docs(dir + "/big.jsonl", n);
    big.x.clear();
    big.x.shrink_to_fit();
    dre_import_options o;
    dre_import_options_init(&o);
    o.quantize = DRE_QUANTIZE_BINARY;
    o.rescore = DRE_RESCORE_FP32;
    o.no_bm25 = 1;
    const std::string path = dir + "/big";
    ASSERT_EQ(dre_index_import((dir + "/big.npy").c_str(), (dir + "/big.jsonl").c_str(),
                               path.c_str(), &o, nullptr),
              DRE_OK)
        << dre_last_error();
    struct stat st;
    const std::string vectors = path + "/" INDEX_RESCORE_FP32_FILE;
    ASSERT_EQ(stat(vectors.c_str(), &st), 0);
    EXPECT_GT(st.st_size, (off_t)n * dim * 4);
    // As a later process finds it: not in the page cache, where the import left it in large
    // folios that a fault would map whole (the kernel's unit, not the rows dre reads).
    const int fd = open(vectors.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
    const long long before = rss_bytes();
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(path.c_str(), &ix), DRE_OK) << dre_last_error();
    const long long opened = rss_bytes();
    std::vector<float> scores(32 * 10);

    std::vector<int64_t> rows(scores.size());
    ASSERT_EQ(dre_index_search(ix, big.q.data(), 32, 10, scores.data(), rows.data()), DRE_OK);
    const long long searched = rss_bytes();
    printf("RSS: %.1f MB before opening, +%.1f MB opened, +%.1f MB after 32 queries "
           "(sign bits %.1f MB, rescoring vectors %.1f MB)\n",
           before / 1e6, (opened - before) / 1e6, (searched - before) / 1e6, n * dim / 8 / 1e6,
           st.st_size / 1e6);
    // the codes, FAISS's and SQLite's own, but not the 154 MB of vectors
    EXPECT_LT(opened - before, 40e6);
    // 32 queries x 40 candidates touch at most 1,280 rows: 5.2 MB with their 4 KiB pages
    EXPECT_LT(searched - before, 20e6);
    dre_index_close(ix);
}

TEST_F(QuantizeTest, EmbedAppendKeepsTheRangesAndTheRows) {
    // the demo corpus in two halves, embedded with the small model as a binary index
    const auto lines = lines_of(read_text(kDemo));
    std::string first, second;
    for (size_t i = 0; i < lines.size(); i++)
        (i < lines.size() / 2 ? first : second) += lines[i] + "\n";
    write_text(dir + "/first.jsonl", first);
    write_text(dir + "/second.jsonl", second);
    const std::string ix_dir = dir + "/ix";
    dre_embed_options o;
    dre_embed_options_init(&o);
    o.device = DRE_DEVICE_CPU;
    o.quantize = DRE_QUANTIZE_BINARY;
    o.rescore_factor = 6;
    ASSERT_EQ(dre_embed(kTiny.c_str(), (dir + "/first.jsonl").c_str(), ix_dir.c_str(), &o, nullptr),
              DRE_OK)
        << dre_last_error();
    const std::string before = read_text(ix_dir + "/" INDEX_RESCORE_INT8_FILE);
    dre_embed_options more;
    dre_embed_options_init(&more);
    more.device = DRE_DEVICE_CPU;
    more.append = 1;
    ASSERT_EQ(dre_embed(kTiny.c_str(), (dir + "/second.jsonl").c_str(), ix_dir.c_str(), &more,
                        nullptr),
              DRE_OK)
        << dre_last_error();
    const std::string after = read_text(ix_dir + "/" INDEX_RESCORE_INT8_FILE);
    ASSERT_GT(after.size(), before.size());
    const size_t head = before.size() - (size_t)(lines.size() / 2) * 32; // tiny model: dim 32
    ASSERT_EQ(head, 4096u);
    EXPECT_EQ(after.substr(32, head - 32), before.substr(32, head - 32))
        << "the ranges the first embed trained stay";
    EXPECT_EQ(after.substr(head, before.size() - head), before.substr(head))
        << "the rows of the first embed stay";
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(ix_dir.c_str(), &ix), DRE_OK) << dre_last_error();
    const dre_index_info *info = dre_index_get_info(ix);
    EXPECT_EQ(info->count, (int64_t)lines.size());
    EXPECT_EQ(info->quantize, DRE_QUANTIZE_BINARY);
    EXPECT_EQ(info->rescore_factor, 6);
    EXPECT_EQ(info->format_version, 3);
    // searched through a searcher: the best match of each document's own vector is itself
    std::vector<float> vectors((size_t)info->n_vectors * info->dim);
    ASSERT_EQ(dre_index_vectors(ix, 0, info->n_vectors, vectors.data()), DRE_OK);
    std::vector<float> scores(info->n_vectors);
    std::vector<int64_t> rows(info->n_vectors);
    ASSERT_EQ(dre_index_search(ix, vectors.data(), info->n_vectors, 1, scores.data(), rows.data()),
              DRE_OK);
    int self = 0;
    for (int64_t i = 0; i < info->n_vectors; i++)
        self += rows[i] == i;
    EXPECT_GE(self, info->n_vectors - 2) << "near-duplicate abstracts may outscore themselves";
    dre_index_close(ix);
    dre_searcher *s = nullptr;
    ASSERT_EQ(dre_searcher_open(ix_dir.c_str(), kTiny.c_str(), DRE_DEVICE_CPU, &s), DRE_OK)
        << dre_last_error();
    dre_search_options so;
    dre_search_options_init(&so);
    so.mode = DRE_SEARCH_DENSE;
    const char *query = "protein language models";
    dre_hit hits[10];
    int32_t n = 0;
    ASSERT_EQ(dre_search(s, &query, 1, &so, hits, &n), DRE_OK) << dre_last_error();
    EXPECT_EQ(n, 10);
    for (int j = 1; j < n; j++)
        EXPECT_GE(hits[j - 1].dense_score, hits[j].dense_score);
    dre_searcher_close(s);
}

// The command line: dre index import with --quantize, dre info, and dre search
// --query-vectors on an index imported without a model (text queries refused, saying why).
TEST_F(QuantizeTest, CommandLineImportInfoAndQueryVectors) {
    const std::string ix = dir + "/cli", out = dir + "/out", err = dir + "/err";
    auto dre = [&](const std::string &args) {
        const int status = std::system((kDre + " " + args + " > '" + out + "' 2> '" + err + "' < /dev/null").c_str());
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    };
    ASSERT_EQ(dre("index import --vectors '" + shared + "/x.npy' --docs '" + shared +
                  "/docs.jsonl' --index '" + ix + "' --quantize binary --rescore-factor 5"),
              0)
        << read_text(err);
    ASSERT_EQ(dre("info --json '" + ix + "'"), 0) << read_text(err);
    cJSON *info = cJSON_Parse(read_text(out).c_str());
    ASSERT_NE(info, nullptr) << read_text(out);
    EXPECT_STREQ(cJSON_GetObjectItem(info, "quantize")->valuestring, "binary");
    EXPECT_STREQ(cJSON_GetObjectItem(info, "rescore")->valuestring, "int8");
    EXPECT_EQ(cJSON_GetObjectItem(info, "rescore_factor")->valueint, 5);
    EXPECT_STREQ(cJSON_GetObjectItem(info, "model")->valuestring, "unknown");
    EXPECT_EQ(cJSON_GetObjectItem(info, "rescore_bytes")->valuedouble, 4096.0 + data.n * data.dim);
    cJSON_Delete(info);
    EXPECT_EQ(dre("search '" + ix + "' 'a text query'"), 1);
    EXPECT_TRUE(has(read_text(err), "--query-vectors")) << read_text(err);
    // three queries as a float32 .npy; the answers are the library's
    write_npy(dir + "/q.npy", std::vector<float>(data.q.begin(), data.q.begin() + 3 * data.dim), 3,
              data.dim);
    ASSERT_EQ(dre("search '" + ix + "' --query-vectors '" + dir + "/q.npy' -k 4"), 0)
        << read_text(err);
    const auto lines = lines_of(read_text(out));
    ASSERT_EQ(lines.size(), 12u);
    dre_index *index = nullptr;
    ASSERT_EQ(dre_index_open(ix.c_str(), &index), DRE_OK);
    std::vector<float> scores(12);
    std::vector<int64_t> rows(12);
    ASSERT_EQ(dre_index_search(index, data.q.data(), 3, 4, scores.data(), rows.data()), DRE_OK);
    dre_index_close(index);
    for (int i = 0; i < 12; i++) {
        const auto f = split_tabs(lines[i]);
        ASSERT_GE(f.size(), 4u) << lines[i];
        EXPECT_EQ(f[0], std::to_string(i / 4));
        EXPECT_EQ(f[1], std::to_string(i % 4 + 1));
        EXPECT_EQ(f[3], "d" + std::to_string(rows[i])) << lines[i];
    }
    EXPECT_EQ(dre("search '" + ix + "' --query-vectors '" + dir + "/q.npy' --mode bm25"), 2);
}

// ---------------------------------------------------------------- errors

TEST_F(QuantizeTest, ImportAndQuantizeErrorsSayWhatIsWrong) {
    dre_import_options o;
    dre_import_options_init(&o);
    const std::string npy = shared + "/x.npy", docs = shared + "/docs.jsonl";
    auto fails = [&](const std::string &vectors, const std::string &d, const std::string &ix,
                     dre_status want, const std::string &says) {
        EXPECT_EQ(dre_index_import(vectors.c_str(), d.c_str(), (dir + "/" + ix).c_str(), &o,
                                   nullptr),
                  want)
            << ix;
        EXPECT_TRUE(has(dre_last_error(), says)) << dre_last_error();
        if (ix != "ok") EXPECT_FALSE(exists(dir + "/" + ix + "/meta.json")) << ix;
    };
    // fewer documents than rows, and more
    write_docs(dir + "/short.jsonl", 10);
    fails(npy, dir + "/short.jsonl", "short", DRE_ERR_MISMATCH, "one row per document");
    write_docs(dir + "/long.jsonl", data.n + 1);
    fails(npy, dir + "/long.jsonl", "long", DRE_ERR_MISMATCH, "past the 3000 rows");
    // a repeated id
    write_text(dir + "/dup.jsonl", read_text(docs) + "{\"_id\": \"d5\", \"text\": \"again\"}\n");
    std::vector<float> more(data.x);
    more.insert(more.end(), data.x.begin(), data.x.begin() + data.dim);
    write_npy(dir + "/more.npy", more, data.n + 1, data.dim);
    fails(dir + "/more.npy", dir + "/dup.jsonl", "dup", DRE_ERR_FORMAT, "\"d5\" again");
    // not float32 / float16, and not a .npy at all
    std::string bad = read_text(npy);
    bad.replace(bad.find("<f4"), 3, "<i4");
    write_text(dir + "/int.npy", bad);
    fails(dir + "/int.npy", docs, "int", DRE_ERR_FORMAT, "dtype '<i4'");
    write_text(dir + "/text.npy", "hello");
    fails(dir + "/text.npy", docs, "text", DRE_ERR_IO, "text.npy");
    // a model of another dimension
    o.model_dir = kTiny.c_str();
    fails(npy, docs, "model", DRE_ERR_MISMATCH, "dim 384");
    o.model_dir = nullptr;
    // rescoring without quantizing; int8 rescoring of int8 codes; a float factory for bits
    o.rescore = DRE_RESCORE_INT8;
    fails(npy, docs, "rescore", DRE_ERR_INVALID_ARG, "quantized indexes only");
    o.quantize = DRE_QUANTIZE_INT8;
    fails(npy, docs, "int8", DRE_ERR_INVALID_ARG, "from fp32 vectors");
    o.quantize = DRE_QUANTIZE_BINARY;
    o.factory = "HNSW32";
    fails(npy, docs, "factory", DRE_ERR_INVALID_ARG, "start with B");
    // an index folder holding an index already
    o = dre_import_options{};
    dre_import_options_init(&o);
    o.no_bm25 = 1;
    const std::string ok = import("ok", DRE_QUANTIZE_NONE, DRE_RESCORE_NONE);
    fails(npy, docs, "ok", DRE_ERR_INVALID_ARG, "already holds an index");
    EXPECT_TRUE(exists(ok + "/meta.json"));
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(ok.c_str(), &ix), DRE_OK);
    EXPECT_EQ(dre_index_set_param(ix, "rescore_factor", 2), DRE_ERR_INVALID_ARG);
    EXPECT_TRUE(has(dre_last_error(), "not quantized"));
    dre_index_close(ix);
}

TEST_F(QuantizeTest, DamagedRescoringVectorsAreRefused) {
    const std::string path = import("b", DRE_QUANTIZE_BINARY, DRE_RESCORE_INT8);
    const std::string file = path + "/" INDEX_RESCORE_INT8_FILE;
    const std::string whole = read_text(file);
    dre_index *ix = nullptr;
    write_text(file, whole.substr(0, whole.size() - 1)); // a byte short
    EXPECT_EQ(dre_index_open(path.c_str(), &ix), DRE_ERR_INDEX);
    EXPECT_TRUE(has(dre_last_error(), "disagree")) << dre_last_error();
    std::string wrong = whole;
    wrong[0] = 'X'; // not ours
    write_text(file, wrong);
    EXPECT_EQ(dre_index_open(path.c_str(), &ix), DRE_ERR_INDEX);
    EXPECT_TRUE(has(dre_last_error(), "not a dre rescoring file")) << dre_last_error();
    unlink(file.c_str());
    EXPECT_EQ(dre_index_open(path.c_str(), &ix), DRE_ERR_IO);
    EXPECT_TRUE(has(dre_last_error(), "vectors.i8")) << dre_last_error();
}

} // namespace
