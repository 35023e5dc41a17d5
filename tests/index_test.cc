// index_test.cc — index folders with random unit vectors: Flat, HNSW32 and a trained
// IVF4,Flat, searched through dre_index_* and checked against brute-force inner products;
// stored vectors, docstore join, meta.json, and folders whose files disagree.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include "common/fileio.h"
#include "index/docstore.h"
#include "index/index.h"
}

namespace {

constexpr int kDim = 32;
constexpr int kCount = 2000;
constexpr int kQueries = 50;
constexpr int kK = 10;

std::vector<float> random_unit_vectors(int n, int dim, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> v((size_t)n * dim);
    for (int i = 0; i < n; i++) {
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            v[(size_t)i * dim + j] = normal(rng);
            norm += v[(size_t)i * dim + j] * v[(size_t)i * dim + j];
        }
        for (int j = 0; j < dim; j++)
            v[(size_t)i * dim + j] /= (float)std::sqrt(norm);
    }
    return v;
}

// Top-k rows by inner product, by looking at every row.
std::vector<int64_t> brute_force(const std::vector<float> &base, const float *q, int k) {
    std::vector<std::pair<float, int64_t>> scored;
    for (int i = 0; i < kCount; i++) {
        float s = 0;
        for (int j = 0; j < kDim; j++)
            s += base[(size_t)i * kDim + j] * q[j];
        scored.push_back({s, i});
    }
    std::partial_sort(scored.begin(), scored.begin() + k, scored.end(),
                      [](auto &a, auto &b) { return a.first > b.first; });
    std::vector<int64_t> rows;
    for (int i = 0; i < k; i++)
        rows.push_back(scored[i].second);
    return rows;
}

class IndexTest : public ::testing::Test {
  protected:
    std::string dir;
    std::vector<float> base = random_unit_vectors(kCount, kDim, 1);
    std::vector<float> queries = random_unit_vectors(kQueries, kDim, 2);

    void SetUp() override {
        char tmpl[] = "/tmp/dre_index_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override {
        std::string cmd = "rm -rf '" + dir + "'";
        ASSERT_EQ(system(cmd.c_str()), 0);
    }

    // Writes an index folder the way the pipeline does: index.faiss, docs.sqlite, meta.json.
    void build(const char *factory) {
        FaissIndex *ix = nullptr;
        ASSERT_EQ(dre_index_faiss_create(factory, kDim, &ix), DRE_OK) << dre_last_error();
        if (dre_index_faiss_train_size(ix) > 0)
            ASSERT_EQ(dre_index_faiss_train(ix, kCount, base.data()), DRE_OK) << dre_last_error();
        // Two adds, as windows arrive: ids continue from ntotal.
        ASSERT_EQ(dre_index_faiss_add(ix, 1500, base.data()), DRE_OK) << dre_last_error();
        ASSERT_EQ(dre_index_faiss_add(ix, kCount - 1500, base.data() + 1500 * kDim), DRE_OK);
        ASSERT_EQ(faiss_Index_ntotal(ix), kCount);
        std::string path = dir + "/" INDEX_FAISS_FILE;
        ASSERT_EQ(dre_index_faiss_write(ix, path.c_str()), DRE_OK) << dre_last_error();
        faiss_Index_free(ix);
        EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0);

        docstore *ds = nullptr;
        std::string docs = dir + "/" INDEX_DOCS_FILE;
        ASSERT_EQ(dre_docstore_open(docs.c_str(), 1, &ds), DRE_OK);
        ASSERT_EQ(dre_docstore_begin(ds), DRE_OK);
        for (int i = 0; i < kCount; i++) {
            std::string id = "doc" + std::to_string(i), title = "title " + std::to_string(i);
            int64_t dup = 0;
            ASSERT_EQ(dre_docstore_add(ds, i, id.c_str(), title.c_str(), "text", &dup), DRE_OK);
        }
        ASSERT_EQ(dre_docstore_commit(ds), DRE_OK);
        dre_docstore_close(ds);

        dre_index_info info{};
        info.format_version = INDEX_FORMAT_VERSION;
        snprintf(info.model_name, sizeof info.model_name, "random");
        snprintf(info.weights_sha256, sizeof info.weights_sha256, "%064d", 0);
        info.dim = kDim;
        info.pooling = DRE_POOL_MEAN;
        info.normalize = 1;
        info.max_length = 256;
        info.count = kCount;
        snprintf(info.factory, sizeof info.factory, "%s", factory);
        ASSERT_EQ(dre_index_meta_write(dir.c_str(), &info), DRE_OK) << dre_last_error();
    }

    // Fraction of brute-force top-k rows the index returns.
    double recall(dre_index *ix) {
        std::vector<float> scores((size_t)kQueries * kK);
        std::vector<int64_t> rows((size_t)kQueries * kK);
        EXPECT_EQ(dre_index_search(ix, queries.data(), kQueries, kK, scores.data(), rows.data()),
                  DRE_OK)
            << dre_last_error();
        size_t hits = 0;
        for (int q = 0; q < kQueries; q++) {
            auto want = brute_force(base, queries.data() + q * kDim, kK);
            std::set<int64_t> got(rows.begin() + q * kK, rows.begin() + (q + 1) * kK);
            for (int64_t r : want)
                hits += got.count(r);
            for (int i = 0; i + 1 < kK; i++)
                EXPECT_GE(scores[q * kK + i], scores[q * kK + i + 1]); // best first
        }
        return (double)hits / (kQueries * kK);
    }
};

TEST_F(IndexTest, FlatIsExactAndScoresAreInnerProducts) {
    build("Flat");
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    const dre_index_info *info = dre_index_get_info(ix);
    EXPECT_EQ(info->count, kCount);
    EXPECT_EQ(info->dim, kDim);
    EXPECT_STREQ(info->factory, "Flat");
    EXPECT_STREQ(info->model_name, "random");
    EXPECT_EQ(info->normalize, 1);

    std::vector<float> scores(kK);
    std::vector<int64_t> rows(kK);
    for (int q = 0; q < kQueries; q++) {
        const float *qv = queries.data() + q * kDim;
        ASSERT_EQ(dre_index_search(ix, qv, 1, kK, scores.data(), rows.data()), DRE_OK);
        auto want = brute_force(base, qv, kK);
        for (int i = 0; i < kK; i++) {
            EXPECT_EQ(rows[i], want[i]) << "query " << q << " rank " << i;
            float dot = 0;
            for (int j = 0; j < kDim; j++)
                dot += base[(size_t)rows[i] * kDim + j] * qv[j];
            EXPECT_NEAR(scores[i], dot, 1e-5);
        }
    }
    EXPECT_DOUBLE_EQ(recall(ix), 1.0);

    // Documents join by row.
    dre_doc doc;
    ASSERT_EQ(dre_index_doc(ix, 1234, &doc), DRE_OK);
    EXPECT_EQ(doc.row, 1234);
    EXPECT_STREQ(doc.id, "doc1234");
    EXPECT_STREQ(doc.title, "title 1234");
    dre_doc_clear(&doc);
    EXPECT_EQ(doc.id, nullptr);
    EXPECT_EQ(dre_index_doc(ix, kCount, &doc), DRE_ERR_INVALID_ARG);

    // Stored vectors come back exactly.
    std::vector<float> back((size_t)100 * kDim);
    ASSERT_EQ(dre_index_vectors(ix, 1900, 100, back.data()), DRE_OK) << dre_last_error();
    for (size_t i = 0; i < back.size(); i++)
        ASSERT_EQ(back[i], base[1900 * kDim + i]);
    EXPECT_EQ(dre_index_vectors(ix, 1950, 100, back.data()), DRE_ERR_INVALID_ARG);

    // A Flat index has no nprobe.
    EXPECT_EQ(dre_index_set_param(ix, "nprobe", 4), DRE_ERR_INVALID_ARG);
    dre_index_close(ix);
}

// A Flat search gives a query the same ids, order and scores, bit for bit, alone or in a batch
// large enough for FAISS's BLAS path (20 queries or more), whose sums depend on the batch.
TEST_F(IndexTest, FlatAnswersAQueryAloneAsInABatch) {
    build("Flat");
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    const int n = kQueries;
    ASSERT_GE(n, 20);
    std::vector<float> batch_scores((size_t)n * kK), one_scores(kK);
    std::vector<int64_t> batch_rows((size_t)n * kK), one_rows(kK);
    ASSERT_EQ(dre_index_search(ix, queries.data(), n, kK, batch_scores.data(), batch_rows.data()),
              DRE_OK);
    int differs_in_faiss = 0;
    for (int q = 0; q < n; q++) {
        ASSERT_EQ(dre_index_search(ix, queries.data() + q * kDim, 1, kK, one_scores.data(),
                                   one_rows.data()),
                  DRE_OK);
        for (int i = 0; i < kK; i++) {
            EXPECT_EQ(batch_rows[q * kK + i], one_rows[i]) << "query " << q << " rank " << i;
            EXPECT_EQ(memcmp(&batch_scores[q * kK + i], &one_scores[i], sizeof(float)), 0)
                << "query " << q << " rank " << i << ": " << batch_scores[q * kK + i] << " vs "
                << one_scores[i];
        }
    }
    // FAISS's own batch scores do differ somewhere (else this test would prove nothing)
    FaissIndex *raw = nullptr;
    ASSERT_EQ(dre_index_faiss_read((dir + "/" INDEX_FAISS_FILE).c_str(), &raw), DRE_OK);
    std::vector<float> raw_scores((size_t)n * kK);
    std::vector<faiss_idx_t> raw_rows((size_t)n * kK);
    ASSERT_EQ(faiss_Index_search(raw, n, queries.data(), kK, raw_scores.data(), raw_rows.data()), 0);
    for (int q = 0; q < n; q++) {
        ASSERT_EQ(dre_index_search(ix, queries.data() + q * kDim, 1, kK, one_scores.data(),
                                   one_rows.data()),
                  DRE_OK);
        for (int i = 0; i < kK; i++)
            differs_in_faiss += raw_rows[q * kK + i] == one_rows[i] &&
                                raw_scores[q * kK + i] != one_scores[i];
    }
    EXPECT_GT(differs_in_faiss, 0);
    faiss_Index_free(raw);
    dre_index_close(ix);
}

// Exact ties (the same vector eleven times) come back in FAISS's order, as FAISS's own
// single-query search leaves them, for a query alone and in a batch of 25.
TEST_F(IndexTest, FlatTiesComeInFaissOrderAloneAndInABatch) {
    for (int r = 10; r < 20; r++)
        std::copy(base.begin() + 5 * kDim, base.begin() + 6 * kDim, base.begin() + r * kDim);
    build("Flat");
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    std::vector<float> q(base.begin() + 5 * kDim, base.begin() + 6 * kDim);
    FaissIndex *raw = nullptr;
    ASSERT_EQ(dre_index_faiss_read((dir + "/" INDEX_FAISS_FILE).c_str(), &raw), DRE_OK);
    std::vector<float> want_scores(kK);
    std::vector<faiss_idx_t> want_rows(kK);
    ASSERT_EQ(faiss_Index_search(raw, 1, q.data(), kK, want_scores.data(), want_rows.data()), 0);
    faiss_Index_free(raw);
    const int n = 25;
    std::vector<float> batch(q.size() * n);
    for (int i = 0; i < n; i++) std::copy(q.begin(), q.end(), batch.begin() + i * kDim);
    std::vector<float> scores((size_t)n * kK);
    std::vector<int64_t> rows((size_t)n * kK);
    ASSERT_EQ(dre_index_search(ix, q.data(), 1, kK, scores.data(), rows.data()), DRE_OK);
    for (int j = 0; j < kK; j++) EXPECT_EQ(rows[j], want_rows[j]) << "alone, rank " << j;
    ASSERT_EQ(dre_index_search(ix, batch.data(), n, kK, scores.data(), rows.data()), DRE_OK);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < kK; j++)
            EXPECT_EQ(rows[i * kK + j], want_rows[j]) << "in a batch, query " << i << " rank " << j;
    // FAISS keeps the first ten of the eleven equal vectors and gives them in descending rows
    EXPECT_EQ(want_rows[0], 18);
    EXPECT_EQ(want_rows[kK - 1], 5);

    dre_index_close(ix);
}

TEST_F(IndexTest, KLargerThanTheIndexPadsWithMinusOne) {
    build("Flat");
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    int k = kCount + 5;
    std::vector<float> scores(k);
    std::vector<int64_t> rows(k);
    ASSERT_EQ(dre_index_search(ix, queries.data(), 1, k, scores.data(), rows.data()), DRE_OK);
    std::set<int64_t> seen(rows.begin(), rows.begin() + kCount);
    EXPECT_EQ(seen.size(), (size_t)kCount);
    for (int i = kCount; i < k; i++)
        EXPECT_EQ(rows[i], -1);
    EXPECT_EQ(dre_index_search(ix, queries.data(), 1, 0, scores.data(), rows.data()),
              DRE_ERR_INVALID_ARG);
    dre_index_close(ix);
}

TEST_F(IndexTest, Hnsw32FindsTheTrueNeighbours) {
    build("HNSW32");
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    EXPECT_GE(recall(ix), 0.80); // efSearch 16: approximate
    ASSERT_EQ(dre_index_set_param(ix, "efSearch", 256), DRE_OK) << dre_last_error();
    EXPECT_GE(recall(ix), 0.99);
    std::vector<float> back((size_t)10 * kDim);
    ASSERT_EQ(dre_index_vectors(ix, 0, 10, back.data()), DRE_OK) << dre_last_error();
    for (size_t i = 0; i < back.size(); i++)
        ASSERT_EQ(back[i], base[i]);
    dre_index_close(ix);
}

TEST_F(IndexTest, Ivf4FlatIsTrainedAndExactWithAllListsProbed) {
    FaissIndex *probe = nullptr;
    ASSERT_EQ(dre_index_faiss_create("IVF4,Flat", kDim, &probe), DRE_OK);
    EXPECT_EQ(dre_index_faiss_train_size(probe), 65536); // at least 65536, 64 per list
    faiss_Index_free(probe);
    ASSERT_EQ(dre_index_faiss_create("Flat", kDim, &probe), DRE_OK);
    EXPECT_EQ(dre_index_faiss_train_size(probe), 0);
    faiss_Index_free(probe);

    build("IVF4,Flat");
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    double one_list = recall(ix); // nprobe 1 of 4 lists
    ASSERT_EQ(dre_index_set_param(ix, "nprobe", 4), DRE_OK) << dre_last_error();
    EXPECT_DOUBLE_EQ(recall(ix), 1.0);
    EXPECT_LT(one_list, 1.0);
    std::vector<float> back((size_t)50 * kDim);
    ASSERT_EQ(dre_index_vectors(ix, 1000, 50, back.data()), DRE_OK) << dre_last_error();
    for (size_t i = 0; i < back.size(); i++)
        ASSERT_EQ(back[i], base[1000 * kDim + i]);
    dre_index_close(ix);
}

// IVF-PQ compresses: trained on the vectors, every list probed, each stored vector must
// still find itself first, and reconstructions stay close to the originals.
TEST_F(IndexTest, IvfPqIsTrainedAndFindsEachVectorItself) {
    build("IVF4,PQ8np"); // np: no polysemous training, which takes seconds
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(dir.c_str(), &ix), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_index_set_param(ix, "nprobe", 4), DRE_OK) << dre_last_error();
    const int n = 200;
    std::vector<float> scores((size_t)n * kK);
    std::vector<int64_t> rows((size_t)n * kK);
    ASSERT_EQ(dre_index_search(ix, base.data(), n, kK, scores.data(), rows.data()), DRE_OK)
        << dre_last_error();
    int self_first = 0;
    for (int q = 0; q < n; q++)
        self_first += rows[(size_t)q * kK] == q;
    EXPECT_GE(self_first, n * 9 / 10) << "of " << n;
    std::vector<float> back((size_t)n * kDim);
    ASSERT_EQ(dre_index_vectors(ix, 0, n, back.data()), DRE_OK) << dre_last_error();
    for (int i = 0; i < n; i++) {
        double dot = 0, norm = 0;
        for (int d = 0; d < kDim; d++) {
            dot += (double)back[(size_t)i * kDim + d] * base[(size_t)i * kDim + d];
            norm += (double)back[(size_t)i * kDim + d] * back[(size_t)i * kDim + d];
        }
        EXPECT_GT(dot / std::sqrt(norm), 0.9) << "row " << i; // base rows are unit vectors
    }
    dre_index_close(ix);
}

TEST_F(IndexTest, UntrainedIvfRefusesVectorsAndBadFactoryIsAnError) {
    FaissIndex *ix = nullptr;
    EXPECT_EQ(dre_index_faiss_create("NoSuchIndex", kDim, &ix), DRE_ERR_INDEX);
    EXPECT_NE(std::string(dre_last_error()).find("NoSuchIndex"), std::string::npos);
    ASSERT_EQ(dre_index_faiss_create("IVF4,Flat", kDim, &ix), DRE_OK);
    EXPECT_EQ(dre_index_faiss_add(ix, 10, base.data()), DRE_ERR_INDEX);
    EXPECT_EQ(dre_index_faiss_train(ix, 3, base.data()), DRE_ERR_INVALID_ARG); // 4 lists, 3 points
    EXPECT_NE(std::string(dre_last_error()).find("at least 4"), std::string::npos);
    faiss_Index_free(ix);
}

TEST_F(IndexTest, FilesThatDisagreeAreRefused) {
    build("Flat");
    dre_index_info info{};
    ASSERT_EQ(dre_index_meta_read(dir.c_str(), &info), DRE_OK);
    info.count = kCount + 1;
    ASSERT_EQ(dre_index_meta_write(dir.c_str(), &info), DRE_OK);
    dre_index *ix = nullptr;
    EXPECT_EQ(dre_index_open(dir.c_str(), &ix), DRE_ERR_INDEX);
    EXPECT_NE(std::string(dre_last_error()).find("files disagree"), std::string::npos)
        << dre_last_error();
    // With an unfinished embed in the folder, the message says how to finish it.
    std::string ck = dir + "/" INDEX_CHECKPOINT_FILE;
    ASSERT_EQ(dre_write_file_atomic(ck.c_str(), "{}", 2), DRE_OK);
    EXPECT_EQ(dre_index_open(dir.c_str(), &ix), DRE_ERR_INDEX);
    EXPECT_NE(std::string(dre_last_error()).find("--resume"), std::string::npos);
    EXPECT_EQ(ix, nullptr);
}

TEST_F(IndexTest, MissingFolderAndMissingFiles) {
    dre_index *ix = nullptr;
    std::string missing = dir + "/none";
    EXPECT_EQ(dre_index_open(missing.c_str(), &ix), DRE_ERR_IO);
    EXPECT_EQ(dre_index_open(dir.c_str(), &ix), DRE_ERR_IO); // empty folder: no meta.json
    EXPECT_NE(std::string(dre_last_error()).find("meta.json"), std::string::npos);
}

TEST_F(IndexTest, MetaRoundTripAndNewerFormatRefused) {
    dre_index_info info{}, back{};
    info.format_version = INDEX_FORMAT_VERSION;
    snprintf(info.model_name, sizeof info.model_name, "bge-small-en-v1.5");
    snprintf(info.weights_sha256, sizeof info.weights_sha256, "%s",
             "ab12000000000000000000000000000000000000000000000000000000000000");
    info.dim = 384;
    info.pooling = DRE_POOL_CLS;
    info.normalize = 1;
    info.max_length = 512;
    info.count = 123456789;
    snprintf(info.factory, sizeof info.factory, "IVF1024,PQ32");
    ASSERT_EQ(dre_index_meta_write(dir.c_str(), &info), DRE_OK);
    ASSERT_EQ(dre_index_meta_read(dir.c_str(), &back), DRE_OK) << dre_last_error();
    EXPECT_STREQ(back.model_name, info.model_name);
    EXPECT_STREQ(back.weights_sha256, info.weights_sha256);
    EXPECT_EQ(back.dim, 384);
    EXPECT_EQ(back.pooling, DRE_POOL_CLS);
    EXPECT_EQ(back.normalize, 1);
    EXPECT_EQ(back.max_length, 512);
    EXPECT_EQ(back.count, 123456789);
    EXPECT_STREQ(back.factory, "IVF1024,PQ32");
    EXPECT_NE(access((dir + "/meta.json.tmp").c_str(), F_OK), 0);

    std::string meta = dir + "/meta.json";
    std::string newer = "{\"format_version\": 99}";
    ASSERT_EQ(dre_write_file_atomic(meta.c_str(), newer.data(), newer.size()), DRE_OK);
    EXPECT_EQ(dre_index_meta_read(dir.c_str(), &back), DRE_ERR_UNSUPPORTED);
}

} // namespace
