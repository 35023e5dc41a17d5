// cli_test.cc — the dre commands of the indexing side end to end, as a user runs them
// from the repository root: `dre embed` of the demo corpus on the CPU, then `dre search`
// (one query, a query file, piped queries, JSON), `dre info`, `dre export`, and their
// usage errors. Search results are checked against sentence-transformers' exact search
// (tests/fixtures/papers_minilm.*, tools/fixtures/make_pipeline_fixtures.py).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";
constexpr int kDocs = 80;
constexpr int kDim = 384;

struct result {
    int status = -1;
    std::string out, err;
};

class CliTest : public ::testing::Test {
  protected:
    static std::string root, index_dir;
    static result embedded;

    // Runs `dre <args>` from the repository root with the default model, stdin from
    // input (or /dev/null); returns its exit status, stdout and stderr.
    static result run(const std::string &args, const std::string &input = "") {
        result r;
        std::string in = root + "/stdin.txt", out = root + "/stdout.txt",
                    err = root + "/stderr.txt";
        std::ofstream(in) << input;
        std::string cmd = "cd '" + kSource + "' && env -u DRE_MODEL '" + kDre + "' " + args +
                          " <'" + in + "' >'" + out + "' 2>'" + err + "'";
        int status = system(cmd.c_str());
        r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        r.out = read_text(out);
        r.err = read_text(err);
        return r;
    }

    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/dre_cli_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root = tmpl;
        index_dir = root + "/papers";
        embedded = run("embed --device cpu tests/data/papers.jsonl '" + index_dir + "'");
    }
    static void TearDownTestSuite() {
        std::string cmd = "rm -rf '" + root + "'";
        if (system(cmd.c_str()) != 0) fprintf(stderr, "could not remove %s\n", root.c_str());
    }

    void SetUp() override {
        ASSERT_EQ(access(kDre.c_str(), X_OK), 0) << kDre << " is missing: build the dre target";
        ASSERT_EQ(access((kSource + "/models/all-MiniLM-L6-v2/model.safetensors").c_str(), R_OK), 0)
            << "models/all-MiniLM-L6-v2 is missing: run tools/setup.sh";
        ASSERT_EQ(embedded.status, 0) << embedded.err;
    }
};

std::string CliTest::root, CliTest::index_dir;
result CliTest::embedded;

TEST_F(CliTest, HelpOfEachCommandExitsZero) {
    for (std::string cmd : {"embed", "search", "info", "export", "index"}) {
        result r = run(cmd + " --help");
        EXPECT_EQ(r.status, 0) << cmd;
        EXPECT_EQ(r.out.rfind("usage: dre " + cmd, 0), 0u) << cmd << ": " << r.out;
    }
}

TEST_F(CliTest, EmbedPrintsASummary) {
    EXPECT_NE(embedded.err.find("embedded 80 docs"), std::string::npos) << embedded.err;
    EXPECT_NE(embedded.err.find("docs/s"), std::string::npos);
    EXPECT_NE(embedded.err.find("tokens/s"), std::string::npos);
    // A second embed into the same folder needs --append.
    result again = run("embed -q --device cpu tests/data/papers.jsonl '" + index_dir + "'");
    EXPECT_EQ(again.status, 1);
    EXPECT_NE(again.err.find("--append"), std::string::npos) << again.err;
}

// With stderr not a terminal, progress is a plain line every --progress-seconds (0: after
// every window; windows end at checkpoints), then the summary.
TEST_F(CliTest, EmbedProgressInALogIsPlainLines) {
    result r = run("embed --device cpu --model tests/fixtures/tiny-bert-cls --progress-seconds 0 "
                   "--checkpoint-every 20 tests/data/papers.jsonl '" +
                   root + "/progress'");
    ASSERT_EQ(r.status, 0) << r.err;
    auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 5u) << r.err;
    for (int i = 0; i < 4; i++)
        EXPECT_EQ(lines[i].rfind("dre embed: " + std::to_string(20 * (i + 1)) + " docs  ", 0), 0u)
            << lines[i];
    EXPECT_NE(lines[3].find("100%"), std::string::npos) << lines[3];
    EXPECT_EQ(r.err.find('\r'), std::string::npos);
    EXPECT_EQ(lines[4].rfind("embedded 80 docs", 0), 0u) << lines[4];
    r = run("embed -q --device cpu --model tests/fixtures/tiny-bert-cls tests/data/papers.jsonl '" +
            root + "/quiet'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
}

TEST_F(CliTest, SearchOneQueryReturnsRankedResults) {
    result r = run("search --device cpu '" + index_dir +
                   "' 'survey of neural reranking and dense retrieval with BERT'");
    ASSERT_EQ(r.status, 0) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 10u) << r.out;
    double last = 2;
    for (size_t i = 0; i < lines.size(); i++) {
        auto f = split_tabs(lines[i]);
        ASSERT_EQ(f.size(), 4u) << lines[i];
        EXPECT_EQ(f[0], std::to_string(i + 1));
        double score = std::stod(f[1]);
        EXPECT_LE(score, last);
        last = score;
        EXPECT_EQ(f[2].size(), 4u); // p001 .. p080
        EXPECT_FALSE(f[3].empty()); // the title
    }
}

TEST_F(CliTest, QueryFileMatchesSentenceTransformersExactSearch) {
    std::string meta_text = read_text(kSource + "/tests/fixtures/papers_minilm.json");
    cJSON *meta = cJSON_Parse(meta_text.c_str());
    ASSERT_NE(meta, nullptr);
    result r = run("search --device cpu --mode dense --json --queries "
                   "tests/data/queries.jsonl '" +
                   index_dir + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    auto lines = lines_of(r.out);
    const cJSON *queries = cJSON_GetObjectItem(meta, "queries");
    ASSERT_EQ((int)lines.size(), cJSON_GetArraySize(queries));
    for (size_t q = 0; q < lines.size(); q++) {
        cJSON *got = cJSON_Parse(lines[q].c_str());
        ASSERT_NE(got, nullptr) << lines[q];
        const cJSON *want = cJSON_GetArrayItem(queries, (int)q);
        EXPECT_STREQ(cJSON_GetObjectItem(got, "query_id")->valuestring,
                     cJSON_GetObjectItem(want, "_id")->valuestring);
        EXPECT_STREQ(cJSON_GetObjectItem(got, "mode")->valuestring, "dense");
        const cJSON *results = cJSON_GetObjectItem(got, "results");
        const cJSON *top = cJSON_GetObjectItem(want, "top");
        ASSERT_EQ(cJSON_GetArraySize(results), 10);
        for (int i = 0; i < 10; i++) {
            const cJSON *g = cJSON_GetArrayItem(results, i), *w = cJSON_GetArrayItem(top, i);
            double ws = cJSON_GetObjectItem(w, "score")->valuedouble;
            EXPECT_EQ(cJSON_GetObjectItem(g, "rank")->valueint, i + 1);
            EXPECT_EQ(cJSON_GetObjectItem(g, "dense_rank")->valueint, i + 1);
            EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(g, "bm25_rank")));
            // as pipeline_test: fp32 scores of two engines agree to a few ulps (measured
            // 6.0e-7), so ids may swap only where the reference's own scores are that close
            EXPECT_NEAR(cJSON_GetObjectItem(g, "score")->valuedouble, ws, 2e-6);
            bool near_tie = false;
            for (int j : {i - 1, i + 1})
                if (j >= 0 && j < 10 &&
                    std::fabs(ws - cJSON_GetObjectItem(cJSON_GetArrayItem(top, j), "score")
                                       ->valuedouble) < 4e-6)
                    near_tie = true;
            if (!near_tie)
                EXPECT_STREQ(cJSON_GetObjectItem(g, "id")->valuestring,
                             cJSON_GetObjectItem(w, "id")->valuestring)
                    << "query " << q << " rank " << i + 1;
        }
        cJSON_Delete(got);
    }
    cJSON_Delete(meta);
}

// One JSON line per query of `dre search --json`, parsed (nullptr where a line is not JSON).
std::vector<cJSON *> json_lines(const std::string &out) {
    std::vector<cJSON *> parsed;
    for (auto &line : lines_of(out))
        parsed.push_back(cJSON_Parse(line.c_str()));
    return parsed;
}

void free_all(std::vector<cJSON *> &v) {
    for (cJSON *j : v)
        cJSON_Delete(j);
    v.clear();
}

double num(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key)->valuedouble;
}

// --mode bm25 gives what SQLite FTS5 gives from Python (tools/fixtures/make_bm25_fixtures.py).
TEST_F(CliTest, Bm25SearchMatchesThePythonReference) {
    cJSON *ref = cJSON_Parse(read_text(kSource + "/tests/fixtures/bm25_reference.json").c_str());
    ASSERT_NE(ref, nullptr);
    const cJSON *set = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "sets"), 0);
    ASSERT_STREQ(cJSON_GetObjectItem(set, "corpus")->valuestring, "tests/data/papers.jsonl");
    result r = run("search --device cpu --mode bm25 --json --queries tests/data/queries.jsonl '" +
                   index_dir + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    auto got = json_lines(r.out);
    ASSERT_EQ(got.size(), 20u);
    for (size_t q = 0; q < got.size(); q++) {
        ASSERT_NE(got[q], nullptr);
        const cJSON *want = cJSON_GetArrayItem(cJSON_GetObjectItem(set, "queries"), (int)q);
        EXPECT_STREQ(cJSON_GetObjectItem(got[q], "query")->valuestring,
                     cJSON_GetObjectItem(want, "text")->valuestring);
        EXPECT_STREQ(cJSON_GetObjectItem(got[q], "mode")->valuestring, "bm25");
        const cJSON *results = cJSON_GetObjectItem(got[q], "results");
        const cJSON *top = cJSON_GetObjectItem(want, "top");
        ASSERT_EQ(cJSON_GetArraySize(results), cJSON_GetArraySize(top));
        for (int i = 0; i < cJSON_GetArraySize(top); i++) {
            const cJSON *g = cJSON_GetArrayItem(results, i), *w = cJSON_GetArrayItem(top, i);
            EXPECT_STREQ(cJSON_GetObjectItem(g, "id")->valuestring,
                         cJSON_GetObjectItem(w, "id")->valuestring)
                << "query " << q << " rank " << i + 1;
            EXPECT_NEAR(num(g, "score"), num(w, "score"), 1e-7 * num(w, "score"));
            EXPECT_EQ(cJSON_GetObjectItem(g, "bm25_rank")->valueint, i + 1);
            EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(g, "dense_rank")));
        }
    }
    free_all(got);
    cJSON_Delete(ref);
}

// Hybrid results are the dense and BM25 lists (as --mode dense / bm25 print them, cut to
// --depth) fused: RRF by default, convex with --alpha; each hit carries both ranks.
TEST_F(CliTest, HybridFusesTheDenseAndBm25Lists) {
    std::string q = "--json --queries tests/data/queries.jsonl '" + index_dir + "'";
    result dense = run("search --device cpu --mode dense -k 30 " + q);
    result bm25 = run("search --device cpu --mode bm25 -k 30 " + q);
    result rrf = run("search --device cpu --mode hybrid --fusion rrf -k 10 --depth 30 " + q);
    result convex = run("search --device cpu --alpha 0.3 -k 10 --depth 30 " + q); // the default
    for (result *r : {&dense, &bm25, &rrf, &convex})
        ASSERT_EQ(r->status, 0) << r->err;
    auto d = json_lines(dense.out), b = json_lines(bm25.out), h = json_lines(rrf.out),
         c = json_lines(convex.out);
    ASSERT_EQ(h.size(), d.size());
    ASSERT_EQ(c.size(), d.size());
    for (size_t qi = 0; qi < d.size(); qi++) {
        struct entry {
            int dense_rank = 0, bm25_rank = 0;
            double dense_score = 0, bm25_score = 0;
        };
        std::map<std::string, entry> docs;
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(d[qi], "results")) {
            entry &e = docs[cJSON_GetObjectItem(item, "id")->valuestring];
            e.dense_rank = cJSON_GetObjectItem(item, "rank")->valueint;
            e.dense_score = num(item, "score");
        }
        cJSON_ArrayForEach(item, cJSON_GetObjectItem(b[qi], "results")) {
            entry &e = docs[cJSON_GetObjectItem(item, "id")->valuestring];
            e.bm25_rank = cJSON_GetObjectItem(item, "rank")->valueint;
            e.bm25_score = num(item, "score");
        }
        double dmin = 1e300, dmax = -1e300, bmin = 1e300, bmax = -1e300;
        for (auto &kv : docs) {
            if (kv.second.dense_rank) {
                dmin = std::min(dmin, kv.second.dense_score);
                dmax = std::max(dmax, kv.second.dense_score);
            }
            if (kv.second.bm25_rank) {
                bmin = std::min(bmin, kv.second.bm25_score);
                bmax = std::max(bmax, kv.second.bm25_score);
            }
        }
        EXPECT_STREQ(cJSON_GetObjectItem(h[qi], "fusion")->valuestring, "rrf");
        EXPECT_STREQ(cJSON_GetObjectItem(c[qi], "fusion")->valuestring, "convex");
        for (int convex_mode = 0; convex_mode < 2; convex_mode++) {
            const cJSON *results = cJSON_GetObjectItem((convex_mode ? c : h)[qi], "results");
            ASSERT_EQ(cJSON_GetArraySize(results), 10);
            double last = 1e300;
            cJSON_ArrayForEach(item, results) {
                std::string id = cJSON_GetObjectItem(item, "id")->valuestring;
                ASSERT_TRUE(docs.count(id)) << id << " is in neither list";
                const entry &e = docs[id];
                const cJSON *dr = cJSON_GetObjectItem(item, "dense_rank");
                const cJSON *br = cJSON_GetObjectItem(item, "bm25_rank");
                EXPECT_EQ(cJSON_IsNull(dr) ? 0 : dr->valueint, e.dense_rank) << id;
                EXPECT_EQ(cJSON_IsNull(br) ? 0 : br->valueint, e.bm25_rank) << id;
                double want = 0;
                if (convex_mode) {
                    if (e.dense_rank) want += 0.3 * (e.dense_score - dmin) / (dmax - dmin);
                    if (e.bm25_rank) want += 0.7 * (e.bm25_score - bmin) / (bmax - bmin);
                } else {
                    if (e.dense_rank) want += 1.0 / (60 + e.dense_rank);
                    if (e.bm25_rank) want += 1.0 / (60 + e.bm25_rank);
                }
                // printed scores have 6 to 9 digits: the fused score from them agrees closely
                EXPECT_NEAR(num(item, "score"), want, 1e-5) << id;
                EXPECT_LE(num(item, "score"), last);
                last = num(item, "score");
            }
        }
    }
    for (auto *v : {&d, &b, &h, &c})
        free_all(*v);
}

// An index without BM25: dense by default; bm25 and hybrid say how to add the table.
TEST_F(CliTest, ModesOnAnIndexWithoutBm25) {
    std::string plain = root + "/plain";
    result r = run("embed -q --no-bm25 --device cpu --model tests/fixtures/tiny-bert-cls "
                   "tests/data/papers.jsonl '" +
                   plain + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    std::string model = " --device cpu --model tests/fixtures/tiny-bert-cls ";
    r = run("search --json" + model + "'" + plain + "' 'sparse attention'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\"mode\": \"dense\""), std::string::npos) << r.out;
    for (std::string mode : {"bm25", "hybrid"}) {
        r = run("search --mode " + mode + model + "'" + plain + "' 'sparse attention'");
        EXPECT_EQ(r.status, 1);
        EXPECT_NE(r.err.find("dre index add-bm25"), std::string::npos) << r.err;
    }
    r = run("index add-bm25 '" + plain + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    r = run("search --json" + model + "'" + plain + "' 'sparse attention'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\"mode\": \"hybrid\""), std::string::npos) << r.out;
    EXPECT_EQ(run("search --mode sparse '" + plain + "' x").status, 2);
    EXPECT_EQ(run("search --fusion max '" + plain + "' x").status, 2);
    EXPECT_EQ(run("search --alpha 1.5 '" + plain + "' x").status, 2);
    EXPECT_EQ(run("search --depth 0 '" + plain + "' x").status, 2);
    EXPECT_EQ(run("index add-bm25").status, 2);
    EXPECT_EQ(run("index drop '" + plain + "'").status, 2);
}

// Without chunks the summary counts the documents cut at the max length; with chunks,
// the chunks, which info, export and search --json show.
TEST_F(CliTest, ChunksThroughEmbedInfoExportAndSearch) {
    std::string tiny = " --device cpu --model tests/fixtures/tiny-bert-cls ";
    result r = run("embed" + tiny + "tests/data/papers.jsonl '" + root + "/cut'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("; 80 docs cut at 128 tokens"), std::string::npos) << r.err;
    std::string ix = root + "/chunked";
    r = run("embed --chunk-tokens 64 --chunk-overlap 16" + tiny + "tests/data/papers.jsonl '" + ix +
            "'");
    ASSERT_EQ(r.status, 0) << r.err;
    size_t at = r.err.find(" chunks\n");
    ASSERT_NE(at, std::string::npos) << r.err;
    long n_chunks = std::stol(r.err.substr(r.err.rfind("; ", at) + 2));
    EXPECT_GT(n_chunks, 80);
    EXPECT_EQ(r.err.find("cut at"), std::string::npos) << r.err;
    r = run("info --json '" + ix + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    cJSON *j = cJSON_Parse(r.out.c_str());
    ASSERT_NE(j, nullptr) << r.out;
    EXPECT_EQ(num(j, "count"), 80);
    EXPECT_EQ(num(j, "n_vectors"), n_chunks);
    EXPECT_EQ(num(j, "chunk_tokens"), 64);
    EXPECT_EQ(num(j, "chunk_overlap"), 16);
    cJSON_Delete(j);
    r = run("info '" + ix + "'");
    EXPECT_NE(r.out.find("vectors      " + std::to_string(n_chunks) + " chunks of up to 64 tokens"),
              std::string::npos)
        << r.out;
    std::string npy = root + "/chunks.npy", ids = root + "/chunks.ids";
    r = run("export '" + ix + "' '" + npy + "' --ids '" + ids + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(read_text(npy).find("'shape': (" + std::to_string(n_chunks) + ", 32)"),
              std::string::npos);
    auto id_lines = lines_of(read_text(ids));
    ASSERT_EQ((long)id_lines.size(), n_chunks);
    EXPECT_EQ(id_lines[0], "p001\t0");
    EXPECT_EQ(id_lines[1], "p001\t1");
    EXPECT_EQ(split_tabs(id_lines.back())[0], "p080");
    r = run("search --json --mode dense -k 80" + tiny + "'" + ix + "' 'sparse attention'");
    ASSERT_EQ(r.status, 0) << r.err;
    cJSON *got = cJSON_Parse(r.out.c_str());
    ASSERT_NE(got, nullptr) << r.out;
    std::set<std::string> seen;
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(got, "results")) {
        EXPECT_TRUE(seen.insert(cJSON_GetObjectItem(item, "id")->valuestring).second);
        EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(item, "chunk")));
    }
    EXPECT_EQ(seen.size(), 80u); // every document once
    cJSON_Delete(got);
}

TEST_F(CliTest, PipedQueriesAndKBounds) {
    result r = run("search --device cpu -k 3 '" + index_dir + "'", "first query\n\nsecond query\n");
    ASSERT_EQ(r.status, 0) << r.err;
    auto lines = lines_of(r.out);
    ASSERT_EQ(lines.size(), 6u) << r.out;
    EXPECT_EQ(split_tabs(lines[0])[0], "1"); // query id = line number
    EXPECT_EQ(split_tabs(lines[3])[0], "3");
    EXPECT_EQ(split_tabs(lines[3])[1], "1"); // rank

    r = run("search --device cpu -k 500 '" + index_dir + "' 'attention'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(lines_of(r.out).size(), (size_t)kDocs);
    EXPECT_NE(r.err.find("note: -k 500"), std::string::npos) << r.err;

    // --param: a search parameter the Flat index lacks is refused by name (search and eval)
    r = run("search --device cpu --mode dense --param nprobe=4 '" + index_dir + "' x");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("\"nprobe\": not a search parameter of this index (Flat)"),
              std::string::npos)
        << r.err;
    r = run("eval --device cpu --mode dense --param efSearch=8 --index '" + index_dir +
            "' --queries tests/data/queries.jsonl --qrels tests/data/qrels.tsv");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("\"efSearch\": not a search parameter"), std::string::npos) << r.err;
    EXPECT_EQ(run("search --param nprobe '" + index_dir + "' x").status, 2);
    EXPECT_EQ(run("search --param nprobe=-1 '" + index_dir + "' x").status, 2);
    EXPECT_EQ(run("search -k 0 '" + index_dir + "' x").status, 2);
    EXPECT_EQ(run("search -k abc '" + index_dir + "' x").status, 2);
    EXPECT_EQ(run("search").status, 2);
}

TEST_F(CliTest, SearchWithAnotherModelIsRefused) {
    result r =
        run("search --device cpu --model tests/fixtures/tiny-bert-cls '" + index_dir + "' x");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("disagree"), std::string::npos) << r.err;
}

TEST_F(CliTest, InfoDescribesTheIndex) {
    result r = run("info '" + index_dir + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("documents    80\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("all-MiniLM-L6-v2"), std::string::npos);
    EXPECT_NE(r.out.find("Flat"), std::string::npos);
    r = run("info --json '" + index_dir + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    cJSON *j = cJSON_Parse(r.out.c_str());
    ASSERT_NE(j, nullptr) << r.out;
    EXPECT_EQ(cJSON_GetObjectItem(j, "count")->valueint, kDocs);
    EXPECT_EQ(cJSON_GetObjectItem(j, "dim")->valueint, kDim);
    EXPECT_STREQ(cJSON_GetObjectItem(j, "pooling")->valuestring, "mean");
    cJSON_Delete(j);
    r = run("info '" + root + "'"); // not an index
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("meta.json"), std::string::npos) << r.err;
}

TEST_F(CliTest, ExportWritesTheVectorsAsNpy) {
    std::string npy = root + "/vectors.npy", ids = root + "/ids.txt";
    result r = run("export '" + index_dir + "' '" + npy + "' --ids '" + ids + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    std::string bytes = read_text(npy);
    ASSERT_GT(bytes.size(), 10u);
    ASSERT_EQ(bytes.compare(0, 6, "\x93NUMPY"), 0);
    size_t header_len = (unsigned char)bytes[8] | ((unsigned char)bytes[9] << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u);
    std::string header = bytes.substr(10, header_len);
    EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
    EXPECT_NE(header.find("'shape': (80, 384)"), std::string::npos) << header;
    ASSERT_EQ(bytes.size(), 10 + header_len + sizeof(float) * kDocs * kDim);
    const float *got = reinterpret_cast<const float *>(bytes.data() + 10 + header_len);
    std::string ref = read_text(kSource + "/tests/fixtures/papers_minilm.f32");
    ASSERT_EQ(ref.size(), sizeof(float) * kDocs * kDim);
    const float *want = reinterpret_cast<const float *>(ref.data());
    for (int i = 0; i < kDocs; i++) {
        double ab = 0, aa = 0, bb = 0;
        for (int j = 0; j < kDim; j++) {
            ab += (double)got[i * kDim + j] * want[i * kDim + j];
            aa += (double)got[i * kDim + j] * got[i * kDim + j];
            bb += (double)want[i * kDim + j] * want[i * kDim + j];
        }
        EXPECT_LE(1.0 - ab / std::sqrt(aa * bb), kCpuParity) << "row " << i;
    }
    auto id_lines = lines_of(read_text(ids));
    ASSERT_EQ(id_lines.size(), (size_t)kDocs);
    EXPECT_EQ(id_lines.front(), "p001");
    EXPECT_EQ(id_lines.back(), "p080");
    EXPECT_EQ(run("export '" + index_dir + "'").status, 2);
}

// --precision bf16 and int8 end to end: embed, export and search with the CPU encoder's
// bf16 products, or its int8 weights; every document within the contract (cosine >= 0.999)
// of sentence-transformers' fp32 embedding and not fp32's own; queries at one precision
// search an index embedded at another. A precision the CPU encoder has not is a usage error
// naming the choices.
using runner = result (*)(const std::string &args, const std::string &input);

void embed_export_and_search(runner run, const std::string &root, const std::string &precision) {
    const std::string ix = root + "/papers-" + precision, npy = root + "/" + precision + ".npy";
    result r = run("embed -q --device cpu --precision " + precision + " tests/data/papers.jsonl '" +
                       ix + "'",
                   "");
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_EQ(run("export '" + ix + "' '" + npy + "'", "").status, 0);
    std::string bytes = read_text(npy);
    const size_t header_len = (unsigned char)bytes[8] | ((unsigned char)bytes[9] << 8);
    ASSERT_EQ(bytes.size(), 10 + header_len + sizeof(float) * kDocs * kDim);
    const float *got = reinterpret_cast<const float *>(bytes.data() + 10 + header_len);
    std::string ref = read_text(kSource + "/tests/fixtures/papers_minilm.f32");
    const float *want = reinterpret_cast<const float *>(ref.data());
    double worst = 1.0;
    for (int i = 0; i < kDocs; i++) {
        const double c = cosine(got + i * kDim, want + i * kDim, kDim);
        EXPECT_GE(c, 0.999) << precision << " row " << i;
        worst = std::min(worst, c);
    }
    std::printf("%s: worst cosine to sentence-transformers fp32 %.7f over %d documents\n",
                precision.c_str(), worst, kDocs);
    EXPECT_LT(worst, 1.0 - 1e-7) << "the " << precision << " index holds fp32's vectors";
    for (const std::string query_precision : {precision, std::string("fp32")}) {
        result q = run("search --device cpu --precision " + query_precision + " --mode dense '" +
                           ix + "' 'survey of neural reranking and dense retrieval with BERT'",
                       "");
        ASSERT_EQ(q.status, 0) << q.err;
        EXPECT_EQ(lines_of(q.out).size(), 10u) << q.out;
    }
}

TEST_F(CliTest, Bf16EmbedExportAndSearch) {
    result bad = run("embed --device cpu --precision fp16 tests/data/papers.jsonl '" + root +
                     "/never'");
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("--precision must be fp32, bf16 or int8"), std::string::npos)
        << bad.err;
    if (read_text("/proc/cpuinfo").find("avx512_bf16") == std::string::npos)
        GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    embed_export_and_search(&CliTest::run, root, "bf16");
}

// int8 the same way, and an int8 index searched with int8 queries gives the same top ten
// documents as with fp32 queries on these 80 papers
TEST_F(CliTest, Int8EmbedExportAndSearch) {
    for (const char *cmd : {"encode", "search", "eval", "serve", "bench encoder"}) {
        result help = run(std::string(cmd) + " --help");
        EXPECT_NE(help.out.find("bf16 or int8"), std::string::npos) << cmd << ": " << help.out;
    }
    // dre info --cpu: a line a precision, saying the path and naming AMX either way
    result info = run("info --cpu");
    ASSERT_EQ(info.status, 0) << info.err;
    for (const char *line : {"\nfp32 ", "\nbf16 ", "\nint8 ", "AMX"})
        EXPECT_NE(info.out.find(line), std::string::npos) << line << " in:\n" << info.out;
    if (read_text("/proc/cpuinfo").find("avx512_bf16") == std::string::npos) {
        EXPECT_NE(info.out.find("unsupported: needs AVX-512 BF16"), std::string::npos) << info.out;
        result r = run("embed -q --device cpu --precision int8 tests/data/papers.jsonl '" + root +
                       "/never'");
        EXPECT_NE(r.status, 0);
        EXPECT_NE(r.err.find("AVX-512 BF16"), std::string::npos) << r.err;
        GTEST_SKIP() << "this CPU has no AVX-512 BF16";
    }
    if (info.out.find("AMX-BF16 tiles") == std::string::npos)
        EXPECT_NE(info.out.find("int8         AVX-512 BF16: int8 weights"), std::string::npos)
            << info.out;
    // DRE_CPU_AMX chooses: the C model of the tiles, or AMX off
    setenv("DRE_CPU_AMX", "emulate", 1);
    result emulated = run("info --cpu");
    setenv("DRE_CPU_AMX", "off", 1);
    result off = run("info --cpu");
    setenv("DRE_CPU_AMX", "emulated", 1); // a misspelling is said, and changes nothing
    result typo = run("info --cpu");
    unsetenv("DRE_CPU_AMX");
    EXPECT_NE(typo.out.find("DRE_CPU_AMX=emulated ignored (it takes off or emulate)"),
              std::string::npos)
        << typo.out;
    EXPECT_NE(emulated.out.find("bf16         AMX tiles emulated in C (DRE_CPU_AMX=emulate"),
              std::string::npos)
        << emulated.out;
    EXPECT_NE(off.out.find("VDPBF16PS with fp32 sums (AMX off (DRE_CPU_AMX=off))"),
              std::string::npos)
        << off.out;
    embed_export_and_search(&CliTest::run, root, "int8");
    const std::string ix = root + "/papers-int8";
    const std::string query = "' 'survey of neural reranking and dense retrieval with BERT'";
    result q8 = run("search --device cpu --precision int8 --mode dense '" + ix + query);
    result q32 = run("search --device cpu --mode dense '" + ix + query);
    ASSERT_EQ(q8.status, 0) << q8.err;
    ASSERT_EQ(q32.status, 0) << q32.err;
    std::vector<std::string> ids8, ids32;
    for (const std::string &l : lines_of(q8.out))
        ids8.push_back(l.substr(0, l.find('\t')));
    for (const std::string &l : lines_of(q32.out))
        ids32.push_back(l.substr(0, l.find('\t')));
    std::sort(ids8.begin(), ids8.end());
    std::sort(ids32.begin(), ids32.end());
    EXPECT_EQ(ids8, ids32) << q8.out << "\n" << q32.out;
    // meta.json says what embedded the documents, and an --append at another precision mixes
    result shown = run("info '" + ix + "'");
    EXPECT_NE(shown.out.find("embedded at  int8"), std::string::npos) << shown.out;
    write_text(root + "/two-more.jsonl",
               "{\"_id\": \"x1\", \"text\": \"one more paper\"}\n"
               "{\"_id\": \"x2\", \"text\": \"and another\"}\n");
    result more = run("embed -q --device cpu --append '" + root + "/two-more.jsonl' '" + ix + "'");
    ASSERT_EQ(more.status, 0) << more.err;
    shown = run("info --json '" + ix + "'");
    EXPECT_NE(shown.out.find("\"doc_precision\": \"mixed\""), std::string::npos) << shown.out;
}

} // namespace
