// chunk_test.cc — long documents in chunks: the tokenizer threads' windows over a text's wordpieces
// (sizes, overlap, the last one ending with the text, the prompt in each, short texts
// whole), truncation counted without chunks, bad sizes refused; and search over a chunked
// index: each document once, scored by its best chunk (checked by brute force over every
// chunk vector), in that order, with that chunk named.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dre.h"
#include "test_util.h"
#include "text/sequences.h"

namespace {

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const std::string kCorpus = kSource + "/tests/data/papers.jsonl";

// The whole tokenization of a text, [CLS] and [SEP] included, with no length limit.
std::vector<int32_t> full_ids(const dre_tokenizer *tok, const std::string &text) {
    std::vector<int32_t> ids(text.size() + 2);
    int32_t n = 0;
    EXPECT_EQ(dre_tokenize(tok, text.data(), text.size(), (int32_t)ids.size(), ids.data(), &n),
              DRE_OK);
    ids.resize(n);
    return ids;
}

class ChunkTest : public ::testing::Test {
  protected:
    dre_tokenizer *tok = nullptr;
    std::vector<std::string> texts;
    void SetUp() override {
        ASSERT_EQ(dre_tokenizer_open(kTiny.c_str(), &tok), DRE_OK) << dre_last_error();
        for (auto &line : lines_of(read_text(kCorpus))) {
            cJSON *doc = cJSON_Parse(line.c_str());
            texts.push_back(std::string(cJSON_GetObjectItem(doc, "title")->valuestring) + " " +
                            cJSON_GetObjectItem(doc, "text")->valuestring);
            cJSON_Delete(doc);
        }
        texts.push_back("short");
        texts.push_back("");
    }
    void TearDown() override { dre_tokenizer_close(tok); }

    // Runs seq_tokenizer over the texts; with chunk_tokens > 0 in chunks.
    token_seqs run(const char *prompt, int32_t chunk_tokens, int32_t overlap, int threads) {
        seq_tokenizer t;
        token_seqs seqs = {};
        EXPECT_EQ(dre_seq_tokenizer_init(&t, tok, 128, prompt, threads), DRE_OK);
        if (chunk_tokens > 0)
            EXPECT_EQ(dre_seq_tokenizer_chunk(&t, chunk_tokens, overlap), DRE_OK)
                << dre_last_error();
        std::vector<const char *> ptrs;
        for (auto &s : texts)
            ptrs.push_back(s.c_str());
        EXPECT_EQ(dre_seq_tokenizer_run(&t, ptrs.data(), nullptr, (int32_t)ptrs.size(), &seqs),
                  DRE_OK)
            << dre_last_error();
        dre_seq_tokenizer_free(&t);
        return seqs;
    }

    std::vector<int32_t> seq(const token_seqs &s, int32_t i) {
        return std::vector<int32_t>(s.ids + s.start[i], s.ids + s.start[i] + s.length[i]);
    }

    // Checks every text's chunks against the rule, from the text's full tokenization.
    void expect_windows(const std::string &prompt, int32_t n_tokens, int32_t overlap,
                        const token_seqs &seqs) {
        std::vector<int32_t> prompt_ids = full_ids(tok, prompt);
        std::vector<int32_t> pp(prompt_ids.begin() + 1, prompt_ids.end() - 1);
        int32_t window = n_tokens - 2 - (int32_t)pp.size(), stride = window - overlap;
        int32_t s = 0;
        int n_chunked = 0;
        for (size_t t = 0; t < texts.size(); t++) {
            std::vector<int32_t> ids = full_ids(tok, texts[t]);
            std::vector<int32_t> pieces(ids.begin() + 1, ids.end() - 1);
            std::vector<int32_t> whole = full_ids(tok, prompt + texts[t]);
            if ((int32_t)whole.size() <= n_tokens &&
                2 + pp.size() + pieces.size() <= (size_t)n_tokens) {
                ASSERT_LT(s, seqs.n);
                EXPECT_EQ(seqs.text[s], (int32_t)t);
                EXPECT_EQ(seqs.first[s], 0);
                EXPECT_EQ(seq(seqs, s), whole) << "text " << t << " is short: kept whole";
                s++;
                continue;
            }
            n_chunked++;
            for (int32_t start = 0;; start += stride) {
                int32_t end = std::min(start + window, (int32_t)pieces.size());
                std::vector<int32_t> want = {ids.front()};
                want.insert(want.end(), pp.begin(), pp.end());
                want.insert(want.end(), pieces.begin() + start, pieces.begin() + end);
                want.push_back(ids.back());
                ASSERT_LT(s, seqs.n);
                EXPECT_EQ(seqs.text[s], (int32_t)t);
                EXPECT_EQ(seqs.first[s], start);
                EXPECT_EQ(seq(seqs, s), want) << "text " << t << " chunk at " << start;
                EXPECT_LE(seqs.length[s], n_tokens);
                s++;
                if (end == (int32_t)pieces.size()) break;
            }
        }
        EXPECT_EQ(s, seqs.n);
        EXPECT_GT(n_chunked, 40); // the demo abstracts are longer than these chunks
    }
};

TEST_F(ChunkTest, WindowsCoverTheTextWithTheOverlap) {
    for (int threads : {1, 3}) {
        token_seqs seqs = run(nullptr, 48, 12, threads);
        expect_windows("", 48, 12, seqs);
        EXPECT_EQ(seqs.n_truncated, 0);
        dre_token_seqs_free(&seqs);
    }
    token_seqs seqs = run(nullptr, 20, 0, 2); // no overlap: the windows tile the text
    expect_windows("", 20, 0, seqs);
    dre_token_seqs_free(&seqs);
}

TEST_F(ChunkTest, ThePromptGoesIntoEveryChunk) {
    token_seqs seqs = run("passage: ", 40, 10, 2);
    expect_windows("passage: ", 40, 10, seqs);
    dre_token_seqs_free(&seqs);
}

TEST_F(ChunkTest, WithoutChunksLongTextsAreCutAndCounted) {
    token_seqs seqs = run(nullptr, 0, 0, 2);
    ASSERT_EQ(seqs.n, (int32_t)texts.size());
    int64_t longer = 0;
    for (size_t t = 0; t < texts.size(); t++) {
        std::vector<int32_t> ids = full_ids(tok, texts[t]);
        longer += ids.size() > 128;
        EXPECT_EQ(seqs.length[t], std::min((int32_t)ids.size(), 128));
    }
    EXPECT_GT(longer, 0);
    EXPECT_EQ(seqs.n_truncated, longer);
    dre_token_seqs_free(&seqs);
}

TEST_F(ChunkTest, SizesWithoutRoomAreRefused) {
    const char *prompt = "a long prompt of several words: ";
    int32_t pp = (int32_t)full_ids(tok, prompt).size() - 2;
    seq_tokenizer t;
    ASSERT_EQ(dre_seq_tokenizer_init(&t, tok, 128, prompt, 1), DRE_OK);
    EXPECT_EQ(dre_seq_tokenizer_chunk(&t, 129, 0), DRE_ERR_INVALID_ARG); // past the max length
    EXPECT_EQ(dre_seq_tokenizer_chunk(&t, 2, 0), DRE_ERR_INVALID_ARG);
    EXPECT_EQ(dre_seq_tokenizer_chunk(&t, 2 + pp, 0), DRE_ERR_INVALID_ARG); // the prompt fills it
    EXPECT_EQ(dre_seq_tokenizer_chunk(&t, 3 + pp, 0), DRE_OK);              // one piece of text
    EXPECT_EQ(dre_seq_tokenizer_chunk(&t, 3 + pp, 1), DRE_ERR_INVALID_ARG); // overlap = window
    EXPECT_EQ(dre_seq_tokenizer_chunk(&t, 32, 4), DRE_OK);
    dre_seq_tokenizer_free(&t);
}

// Search over a chunked index, checked against every chunk vector by brute force.
TEST(ChunkedSearch, EachDocumentOnceByItsBestChunk) {
    char tmpl[] = "/tmp/dre_chunk_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, index = dir + "/ix";
    dre_embed_options opts;
    dre_embed_options_init(&opts);
    opts.device = DRE_DEVICE_CPU;
    opts.chunk_tokens = 32;
    opts.chunk_overlap = 8;
    dre_embed_summary summary;
    ASSERT_EQ(dre_embed(kTiny.c_str(), kCorpus.c_str(), index.c_str(), &opts, &summary), DRE_OK)
        << dre_last_error();
    EXPECT_EQ(summary.n_docs, 80);
    EXPECT_GT(summary.n_vectors, 80 * 5);
    EXPECT_EQ(summary.n_truncated, 0);

    dre_searcher *s = nullptr;
    ASSERT_EQ(dre_searcher_open(index.c_str(), kTiny.c_str(), DRE_DEVICE_CPU, &s), DRE_OK)
        << dre_last_error();
    dre_index *ix = dre_searcher_index(s);
    const dre_index_info *info = dre_index_get_info(ix);
    ASSERT_EQ(info->n_vectors, summary.n_vectors);
    EXPECT_EQ(info->chunk_tokens, 32);
    EXPECT_EQ(info->chunk_overlap, 8);
    EXPECT_EQ(info->format_version, 2);
    int dim = info->dim;
    std::vector<float> vectors((size_t)info->n_vectors * dim);
    ASSERT_EQ(dre_index_vectors(ix, 0, info->n_vectors, vectors.data()), DRE_OK);
    std::vector<int64_t> doc_of(info->n_vectors);
    std::vector<int32_t> chunk_of(info->n_vectors);
    std::map<int64_t, int32_t> chunks_per_doc;
    for (int64_t v = 0; v < info->n_vectors; v++) {
        ASSERT_EQ(dre_index_chunk(ix, v, &doc_of[v], &chunk_of[v]), DRE_OK);
        EXPECT_EQ(chunk_of[v], chunks_per_doc[doc_of[v]]++) << "chunks in order";
    }
    EXPECT_EQ((int64_t)chunks_per_doc.size(), info->count);

    std::vector<const char *> queries = {"sparse attention for long sequences",
                                         "diffusion transformers", "knowledge distillation",
                                         "reinforcement learning from human feedback"};
    dre_model *model = nullptr;
    dre_tokenizer *tok = nullptr;
    dre_encoder *enc = nullptr;
    ASSERT_EQ(dre_model_open(kTiny.c_str(), &model), DRE_OK);
    ASSERT_EQ(dre_tokenizer_open(kTiny.c_str(), &tok), DRE_OK);
    ASSERT_EQ(dre_encoder_open(model, DRE_DEVICE_CPU, 0, &enc), DRE_OK);
    std::vector<float> qv(queries.size() * dim);
    ASSERT_EQ(dre_encode_texts(enc, tok, queries.data(), queries.size(), 1, qv.data()), DRE_OK);

    const int k = 30;
    dre_search_options o;
    dre_search_options_init(&o);
    o.mode = DRE_SEARCH_DENSE;
    o.k = k;
    std::vector<dre_hit> hits(queries.size() * k);
    std::vector<int32_t> n_hits(queries.size());
    ASSERT_EQ(dre_search(s, queries.data(), queries.size(), &o, hits.data(), n_hits.data()), DRE_OK)
        << dre_last_error();
    for (size_t q = 0; q < queries.size(); q++) {
        // brute force: each document's best chunk
        std::map<int64_t, std::pair<double, int32_t>> best;
        for (int64_t v = 0; v < info->n_vectors; v++) {
            double dot = 0;
            for (int j = 0; j < dim; j++)
                dot += (double)qv[q * dim + j] * vectors[(size_t)v * dim + j];
            auto it = best.find(doc_of[v]);
            if (it == best.end() || dot > it->second.first) best[doc_of[v]] = {dot, chunk_of[v]};
        }
        std::vector<std::pair<double, int64_t>> order;
        for (auto &kv : best)
            order.push_back({kv.second.first, kv.first});
        std::sort(order.rbegin(), order.rend());
        ASSERT_EQ(n_hits[q], k);
        std::set<int64_t> seen;
        for (int r = 0; r < k; r++) {
            const dre_hit &h = hits[q * k + r];
            EXPECT_TRUE(seen.insert(h.row).second) << "document " << h.row << " twice";
            // FAISS's fp32 inner product of unit vectors against this one in double: a few
            // ulps of fp32 at most (1e-6 is 16 of them at 1.0)
            EXPECT_NEAR(h.score, best[h.row].first, 1e-6) << "query " << q << " rank " << r;
            EXPECT_EQ(h.chunk, best[h.row].second) << "query " << q << " rank " << r;
            EXPECT_EQ(h.dense_rank, r + 1);
            // the ranking is by best chunk (ids may swap where scores nearly tie)
            EXPECT_NEAR(h.score, order[r].first, 1e-6) << "query " << q << " rank " << r;
        }
    }
    dre_encoder_close(enc);
    dre_tokenizer_close(tok);
    dre_model_close(model);
    dre_searcher_close(s);
    std::string cmd = "rm -rf '" + dir + "'";
    ASSERT_EQ(system(cmd.c_str()), 0);
}

} // namespace
