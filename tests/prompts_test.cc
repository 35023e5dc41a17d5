// prompts_test.cc — prompts as sentence-transformers applies them
// (tools/fixtures/make_prompt_fixtures.py -> tests/fixtures/prompts/): a model folder whose
// config_sentence_transformers.json names prompts gives dre the same query and document
// prompts, the same token ids for prompt + text, the same document embeddings from
// dre_embed (which records the prompts in meta.json), and the same query embeddings at
// search time without being told (scores equal sentence-transformers' dot products);
// --query-prompt "" and --append with other prompts behave.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "dre.h"
#include "test_util.h"

namespace {

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kFixtures = kSource + "/tests/fixtures/prompts";

struct prompt_case {
    std::string name, model_src;
};

class PromptsTest : public ::testing::TestWithParam<prompt_case> {
  protected:
    std::string dir, model_dir;
    cJSON *ref = nullptr;
    std::vector<float> vectors; // documents with prompt and without, queries likewise
    int dim = 0, n_docs = 0, n_queries = 0;

    void SetUp() override {
        char tmpl[] = "/tmp/dre_prompts_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        const prompt_case &c = GetParam();
        ref = cJSON_Parse(read_text(kFixtures + "/" + c.name + ".ref.json").c_str());
        ASSERT_NE(ref, nullptr) << "run tools/fixtures/make_prompt_fixtures.py";
        // the model's files, with the case's config_sentence_transformers.json
        std::string src = kSource + "/" + c.model_src;
        ASSERT_TRUE(exists(src + "/model.safetensors")) << src;
        model_dir = dir + "/model";
        ASSERT_EQ(mkdir(model_dir.c_str(), 0755), 0);
        for (const std::string &name : files_in(src))
            if (name != "config_sentence_transformers.json")
                ASSERT_EQ(symlink((src + "/" + name).c_str(), (model_dir + "/" + name).c_str()), 0);
        write_text(model_dir + "/config_sentence_transformers.json",
                   read_text(kFixtures + "/" + c.name + ".json"));
        n_docs = cJSON_GetArraySize(cJSON_GetObjectItem(ref, "doc_ids"));
        n_queries = cJSON_GetArraySize(cJSON_GetObjectItem(ref, "queries"));
        std::string raw = read_text(kFixtures + "/" + c.name + ".f32");
        size_t rows = 2 * (size_t)n_docs + 2 * (size_t)n_queries;
        ASSERT_EQ(raw.size() % (rows * sizeof(float)), 0u);
        dim = (int)(raw.size() / (rows * sizeof(float)));
        vectors.resize(raw.size() / sizeof(float));
        memcpy(vectors.data(), raw.data(), raw.size());
    }
    void TearDown() override {
        cJSON_Delete(ref);
        std::string cmd = "rm -rf '" + dir + "'";
        ASSERT_EQ(system(cmd.c_str()), 0);
    }

    std::string str(const char *key) { return cJSON_GetObjectItem(ref, key)->valuestring; }
    const float *doc_vector(int i, bool prompted = true) {
        return vectors.data() + ((prompted ? 0 : (size_t)n_docs) + i) * dim;
    }
    const float *query_vector(int q, bool prompted) {
        return vectors.data() + (2 * (size_t)n_docs + (prompted ? 0 : n_queries) + q) * dim;
    }

    // The case's documents as a corpus file (the first n_docs demo documents).
    std::string corpus() {
        auto lines = lines_of(read_text(kSource + "/tests/data/papers.jsonl"));
        std::string text;
        for (int i = 0; i < n_docs; i++)
            text += lines[i] + "\n";
        std::string path = dir + "/corpus.jsonl";
        write_text(path, text);
        return path;
    }

    // dre_search dense scores equal dot products of sentence-transformers' embeddings.
    void expect_scores(const std::string &index, const char *query_prompt, bool prompted,
                       bool docs_prompted = true) {
        dre_searcher *s = nullptr;
        ASSERT_EQ(dre_searcher_open(index.c_str(), model_dir.c_str(), DRE_DEVICE_CPU, &s), DRE_OK)
            << dre_last_error();
        std::vector<const char *> queries;
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(ref, "queries"))
            queries.push_back(item->valuestring);
        dre_search_options o;
        dre_search_options_init(&o);
        o.mode = DRE_SEARCH_DENSE;
        o.k = n_docs;
        o.query_prompt = query_prompt;
        std::vector<dre_hit> hits((size_t)n_queries * n_docs);
        std::vector<int32_t> n_hits(n_queries);
        ASSERT_EQ(dre_search(s, queries.data(), queries.size(), &o, hits.data(), n_hits.data()),
                  DRE_OK)
            << dre_last_error();
        for (int q = 0; q < n_queries; q++) {
            ASSERT_EQ(n_hits[q], n_docs);
            for (int r = 0; r < n_docs; r++) {
                const dre_hit &h = hits[(size_t)q * n_docs + r];
                double want = 0;
                for (int j = 0; j < dim; j++)
                    want += (double)query_vector(q, prompted)[j] *
                            doc_vector((int)h.row, docs_prompted)[j];
                EXPECT_NEAR(h.score, want, 2e-4) << "query " << q << " row " << h.row;
            }
        }
        dre_searcher_close(s);
    }
};

TEST_P(PromptsTest, ModelPromptsAndTokensAreSentenceTransformers) {
    dre_model *model = nullptr;
    ASSERT_EQ(dre_model_open(model_dir.c_str(), &model), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_model_get_info(model)->query_prompt, str("query_prompt"));
    EXPECT_EQ(dre_model_get_info(model)->doc_prompt, str("doc_prompt"));
    dre_model_close(model);
    dre_tokenizer *tok = nullptr;
    ASSERT_EQ(dre_tokenizer_open(model_dir.c_str(), &tok), DRE_OK);
    const cJSON *t;
    int n = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(ref, "tokens")) {
        std::string text = cJSON_GetObjectItem(t, "text")->valuestring;
        std::vector<int32_t> ids(dre_tokenizer_max_length(tok));
        int32_t n_ids = 0;
        ASSERT_EQ(dre_tokenize(tok, text.data(), text.size(), 0, ids.data(), &n_ids), DRE_OK);
        std::vector<int32_t> want;
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(t, "ids")) want.push_back(id->valueint);
        ids.resize(n_ids);
        EXPECT_EQ(ids, want) << text;
        n++;
    }
    EXPECT_EQ(n, 4);
    dre_tokenizer_close(tok);
}

TEST_P(PromptsTest, EmbedAndSearchApplyThePrompts) {
    std::string index = dir + "/index";
    dre_embed_options opts;
    dre_embed_options_init(&opts);
    opts.device = DRE_DEVICE_CPU;
    ASSERT_EQ(dre_embed(model_dir.c_str(), corpus().c_str(), index.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(index.c_str(), &ix), DRE_OK);
    EXPECT_EQ(dre_index_get_info(ix)->doc_prompt, str("doc_prompt"));
    EXPECT_EQ(dre_index_get_info(ix)->query_prompt, str("query_prompt"));
    std::vector<float> got((size_t)n_docs * dim);
    ASSERT_EQ(dre_index_vectors(ix, 0, n_docs, got.data()), DRE_OK);
    for (int i = 0; i < n_docs; i++)
        EXPECT_LE(1.0 - cosine(got.data() + (size_t)i * dim, doc_vector(i), dim), kCpuParity)
            << "doc " << i;
    dre_index_close(ix);
    // the index's query prompt, applied without being asked; or none when told ""
    expect_scores(index, nullptr, true);
    expect_scores(index, "", false);
    // --append keeps the index's prompts and refuses others
    opts.append = 1;
    opts.doc_prompt = "something else: ";
    EXPECT_EQ(dre_embed(model_dir.c_str(), corpus().c_str(), index.c_str(), &opts, nullptr),
              DRE_ERR_MISMATCH);
    EXPECT_TRUE(has(dre_last_error(), "prompts")) << dre_last_error();
}

// Prompts given to dre_embed override the model's ("" for none) and are what meta.json
// records; a query prompt given to dre_search overrides the index's.
TEST_P(PromptsTest, OptionsOverrideTheModelsPrompts) {
    std::string index = dir + "/index";
    dre_embed_options opts;
    dre_embed_options_init(&opts);
    opts.device = DRE_DEVICE_CPU;
    opts.doc_prompt = "";
    opts.query_prompt = "";
    ASSERT_EQ(dre_embed(model_dir.c_str(), corpus().c_str(), index.c_str(), &opts, nullptr), DRE_OK)
        << dre_last_error();
    std::string meta = read_text(index + "/meta.json");
    EXPECT_EQ(meta.find("_prompt\""), std::string::npos) << meta;
    dre_index *ix = nullptr;
    ASSERT_EQ(dre_index_open(index.c_str(), &ix), DRE_OK);
    std::vector<float> got((size_t)n_docs * dim);
    ASSERT_EQ(dre_index_vectors(ix, 0, n_docs, got.data()), DRE_OK);
    for (int i = 0; i < n_docs; i++)
        EXPECT_LE(1.0 - cosine(got.data() + (size_t)i * dim, doc_vector(i, false), dim), kCpuParity)
            << "doc " << i;
    dre_index_close(ix);
    std::string query_prompt = str("query_prompt");
    expect_scores(index, nullptr, false, false);
    expect_scores(index, query_prompt.c_str(), true, false);
}

INSTANTIATE_TEST_SUITE_P(Models, PromptsTest,
                         ::testing::Values(prompt_case{"minilm", "models/all-MiniLM-L6-v2"},
                                           prompt_case{"tiny", "tests/fixtures/tiny-bert-cls"}),
                         [](const auto &info) { return info.param.name; });

} // namespace
