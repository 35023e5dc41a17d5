// cli_test.cc — the dre commands of the indexing side end to end, as a user runs them
// from the repository root: `dre embed` of the demo corpus on the CPU, then `dre search`
// (one query, a query file, piped queries, JSON), `dre info`, `dre export`, and their
// usage errors. Search results are checked against sentence-transformers' exact search
// (tests/fixtures/papers_minilm.*, tools/make_pipeline_fixtures.py).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
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
    for (std::string cmd : {"embed", "search", "info", "export"}) {
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
    result r = run("search --device cpu --json --queries ../shared/data/queries.jsonl '" +
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
        const cJSON *results = cJSON_GetObjectItem(got, "results");
        const cJSON *top = cJSON_GetObjectItem(want, "top");
        ASSERT_EQ(cJSON_GetArraySize(results), 10);
        for (int i = 0; i < 10; i++) {
            const cJSON *g = cJSON_GetArrayItem(results, i), *w = cJSON_GetArrayItem(top, i);
            double ws = cJSON_GetObjectItem(w, "score")->valuedouble;
            EXPECT_EQ(cJSON_GetObjectItem(g, "rank")->valueint, i + 1);
            EXPECT_NEAR(cJSON_GetObjectItem(g, "score")->valuedouble, ws, 1e-3);
            bool near_tie = false; // ids may swap only where the reference nearly ties
            for (int j : {i - 1, i + 1})
                if (j >= 0 && j < 10 &&
                    std::fabs(ws - cJSON_GetObjectItem(cJSON_GetArrayItem(top, j), "score")
                                       ->valuedouble) < 1e-3)
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
        EXPECT_GE(ab / std::sqrt(aa * bb), 0.9999) << "row " << i;
    }
    auto id_lines = lines_of(read_text(ids));
    ASSERT_EQ(id_lines.size(), (size_t)kDocs);
    EXPECT_EQ(id_lines.front(), "p001");
    EXPECT_EQ(id_lines.back(), "p080");
    EXPECT_EQ(run("export '" + index_dir + "'").status, 2);
}

} // namespace
