// eval_e2e_test.cc — `dre embed` then `dre eval` on the CPU, against
// tools/fixtures/eval_reference.py (sentence-transformers fp32 + FAISS Flat + pytrec_eval) for
// --mode dense, and tools/fixtures/make_hybrid_fixtures.py (SQLite FTS5 from Python, fused with
// the sentence-transformers run, pytrec_eval) for --mode bm25 and hybrid (rrf and convex):
// nDCG@10, Recall@10, Recall@100 and MRR@10 of every query, to the digits dre eval prints, on
// the demo (tests/data) and on 992 SciFact abstracts with 200 claims (tests/data/scifact).
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "test_util.h"

namespace {

using namespace test_util;

const std::string source_dir = DRE_SOURCE_DIR;
const std::string model_dir = source_dir + "/models/all-MiniLM-L6-v2";
const std::string data_dir = source_dir + "/tests/data";
const std::string dre_bin = std::string(DRE_BINARY_DIR) + "/dre";

// dre eval --json prints metrics to 10 decimals: a difference up to 5e-11 is that rounding,
// and every query here has the reference's ranking (measured: at most 4.8e-11 on all 300
// queries and 4 methods). A document swapped with another changes a metric by 1e-3 or more
// (a 1/log2 step of nDCG over 1,000 ranks at the least), so 1e-9 tells the two apart.
constexpr double kPerQuery = 1e-9, kMean = 1e-9;

// Runs a shell command; returns its exit status and its stdout in *out.
int run(const std::string &cmd, std::string *out) {
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return -1;
    char buf[4096];
    size_t n;
    out->clear();
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        out->append(buf, n);
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string quote(const std::string &s) { return "'" + s + "'"; }

double number(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(item) ? item->valuedouble : NAN;
}

// A corpus with its references: the demo (80 abstracts, two query sets; its Recall@10 and
// @100 are 1.0 for every method, so they check little) and 992 abstracts of SciFact with 200
// claims (tests/data/scifact: nDCG@10 0.80 dense, 0.82 BM25, 0.87 convex; none saturates).
struct corpus_case {
    const char *name, *data, *corpus, *dense_ref, *hybrid_ref;
};
const corpus_case kDemo = {"demo", "/tests/data", "papers.jsonl",
                           "/tests/fixtures/eval_reference_all-MiniLM-L6-v2.json",
                           "/tests/fixtures/hybrid_reference.json"};
const corpus_case kScifact = {"scifact", "/tests/data/scifact", "corpus.jsonl",
                              "/tests/fixtures/eval_reference_scifact.json",
                              "/tests/fixtures/hybrid_reference_scifact.json"};

class EvalEndToEnd : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/dre_eval_e2e_XXXXXX";
        char *dir = mkdtemp(tmpl);
        ASSERT_NE(dir, nullptr);
        tmp_dir = dir;
        index_dir = tmp_dir + "/demo"; // the demo corpus's (index_of(kDemo))
    }
    static void TearDownTestSuite() {
        if (!tmp_dir.empty()) std::system(("rm -rf " + quote(tmp_dir)).c_str());
    }
    static std::string tmp_dir, index_dir;
    static std::set<std::string> embedded;

    static std::string index_of(const corpus_case &c) { return tmp_dir + "/" + c.name; }

    void embed_once(const corpus_case &c = kDemo) {
        if (embedded.count(c.name)) return;
        ASSERT_TRUE(exists(model_dir + "/model.safetensors"))
            << model_dir << " is missing: run tools/setup.sh";
        const std::string corpus = source_dir + c.data + "/" + c.corpus;
        ASSERT_TRUE(exists(corpus)) << corpus << " is missing";
        ASSERT_TRUE(exists(dre_bin)) << dre_bin << " is missing: build the dre_cli target";
        std::string out;
        int rc = run(quote(dre_bin) + " embed --quiet --device cpu --model " + quote(model_dir) +
                         " " + quote(corpus) + " " + quote(index_of(c)) + " 2>&1",
                     &out);
        ASSERT_EQ(rc, 0) << "dre embed failed:\n" << out;
        embedded.insert(c.name);
    }

    // how: "dense" (against the dense reference), "bm25", "rrf" or "convex" (against the
    // hybrid one): the means and every query's metrics
    void check_set(const char *set, const char *queries, const char *qrels,
                   const std::string &how = "dense", const corpus_case &c = kDemo) {
        embed_once(c);
        if (HasFatalFailure()) return;
        bool dense = how == "dense";
        std::string ref_text = read_text(source_dir + (dense ? c.dense_ref : c.hybrid_ref));
        cJSON *ref = cJSON_Parse(ref_text.c_str());
        ASSERT_NE(ref, nullptr)
            << "missing or bad fixture; run tools/fixtures/eval_reference.py and "
               "tools/fixtures/make_hybrid_fixtures.py";
        const cJSON *set_ref =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ref, "sets"), set);
        const cJSON *metrics =
            cJSON_GetObjectItemCaseSensitive(set_ref, dense ? "metrics" : how.c_str());
        const cJSON *per_query_ref =
            cJSON_GetObjectItemCaseSensitive(dense ? set_ref : metrics, "per_query");
        ASSERT_NE(metrics, nullptr) << "no reference for " << set << " " << how;
        ASSERT_NE(per_query_ref, nullptr) << "no per-query reference for " << set << " " << how;
        std::string mode = how == "dense"  ? "--mode dense"
                           : how == "bm25" ? "--mode bm25"
                           : how == "rrf"  ? "--mode hybrid --fusion rrf"
                                           : "--mode hybrid --fusion convex --alpha 0.5";
        const std::string data = source_dir + c.data;
        std::string out;
        int rc =
            run(quote(dre_bin) + " eval --device cpu --json --per-query " + mode + " --model " +
                    quote(model_dir) + " --index " + quote(index_of(c)) + " --queries " +
                    quote(data + "/" + queries) + " --qrels " + quote(data + "/" + qrels) + " 2>&1",
                &out);
        ASSERT_EQ(rc, 0) << "dre eval failed:\n" << out;
        cJSON *got = cJSON_Parse(out.c_str());
        ASSERT_NE(got, nullptr) << "dre eval --json printed:\n" << out;
        EXPECT_EQ(number(got, "n_queries"), number(metrics, "n_queries"));
        if (dense) EXPECT_EQ(number(got, "n_skipped"), number(metrics, "n_skipped"));
        const cJSON *per_query = cJSON_GetObjectItemCaseSensitive(got, "per_query");
        int n_queries = 0;
        double worst = 0;
        const cJSON *q;
        cJSON_ArrayForEach(q, per_query_ref) {
            const cJSON *mine = cJSON_GetObjectItemCaseSensitive(per_query, q->string);
            ASSERT_NE(mine, nullptr) << set << " " << how << ": no query " << q->string;
            n_queries++;
            for (const char *key : {"ndcg_10", "recall_10", "recall_100", "mrr_10"}) {
                const double d = number(mine, key) - number(q, key);
                worst = std::max(worst, std::fabs(d));
                EXPECT_NEAR(number(mine, key), number(q, key), kPerQuery)
                    << set << " " << how << " query " << q->string << " " << key;
            }
        }
        EXPECT_GT(n_queries, 0);
        for (const char *key : {"ndcg_10", "recall_10", "recall_100", "mrr_10"}) {
            double a = number(got, key), b = number(metrics, key);
            EXPECT_NEAR(a, b, kMean) << set << " " << how << " " << key;
            std::printf("%s %s %s: dre %.10f reference %.10f diff %+.2e\n", set, how.c_str(), key,
                        a, b, a - b);
            RecordProperty(std::string(set) + "_" + how + "_" + key + "_diff",
                           std::to_string(a - b));
        }
        std::printf("%s %s: %d queries, the largest per-query difference %.2e\n", set, how.c_str(),
                    n_queries, worst);
        cJSON_Delete(got);
        cJSON_Delete(ref);
    }
};

std::string EvalEndToEnd::tmp_dir, EvalEndToEnd::index_dir;
std::set<std::string> EvalEndToEnd::embedded;

TEST_F(EvalEndToEnd, QueriesMatchReference) { check_set("queries", "queries.jsonl", "qrels.tsv"); }

TEST_F(EvalEndToEnd, TitleQueriesMatchReference) {
    check_set("title-queries", "title-queries.jsonl", "title-qrels.tsv");
}

TEST_F(EvalEndToEnd, Bm25AndHybridMatchReference) {
    for (const char *how : {"bm25", "rrf", "convex"}) {
        check_set("queries", "queries.jsonl", "qrels.tsv", how);
        check_set("title-queries", "title-queries.jsonl", "title-qrels.tsv", how);
    }
}

// SciFact's 200 claims over 992 of its abstracts, where no metric saturates: every query's
// metrics, every method.
TEST_F(EvalEndToEnd, ScifactMatchesReferencePerQuery) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "under ASan, 992 abstracts through the instrumented encoder take 4 minutes of "
                    "CI's time; the demo cases above run the same code under ASan, and the "
                    "build without sanitizers runs this case";
#endif
    for (const char *how : {"dense", "bm25", "rrf", "convex"})
        check_set("scifact", "queries.jsonl", "qrels.tsv", how, kScifact);
}

// A query without judgements is skipped and counted; --run writes k lines per query;
// --per-query lists the scored queries only.
TEST_F(EvalEndToEnd, SkipsUnjudgedQueriesAndWritesTheRun) {
    embed_once();
    if (HasFatalFailure()) return;
    std::ifstream all(data_dir + "/queries.jsonl");
    std::string first;
    ASSERT_TRUE(std::getline(all, first));
    std::string queries = tmp_dir + "/two.jsonl", run_file = tmp_dir + "/run.txt";
    std::ofstream(queries) << first
                           << "\n{\"_id\": \"zz-unjudged\", \"text\": \"no judgements\"}\n";
    std::string out;
    int rc = run(quote(dre_bin) + " eval --device cpu --json --per-query -k 5 --model " +
                     quote(model_dir) + " --index " + quote(index_dir) + " --queries " +
                     quote(queries) + " --qrels " + quote(data_dir + "/qrels.tsv") + " --run " +
                     quote(run_file) + " 2>&1",
                 &out);
    ASSERT_EQ(rc, 0) << out;
    cJSON *got = cJSON_Parse(out.c_str());
    ASSERT_NE(got, nullptr) << out;
    EXPECT_EQ(number(got, "n_queries"), 1);
    EXPECT_EQ(number(got, "n_skipped"), 1);
    const cJSON *per_query = cJSON_GetObjectItemCaseSensitive(got, "per_query");
    EXPECT_NE(cJSON_GetObjectItemCaseSensitive(per_query, "q01"), nullptr) << out;
    EXPECT_EQ(cJSON_GetObjectItemCaseSensitive(per_query, "zz-unjudged"), nullptr) << out;
    cJSON_Delete(got);

    std::ifstream run_in(run_file);
    std::string line;
    int n_lines = 0, n_unjudged = 0;
    while (std::getline(run_in, line)) {
        n_lines++;
        std::istringstream fields(line);
        std::string qid, q0, doc, rank, score, tag;
        ASSERT_TRUE(fields >> qid >> q0 >> doc >> rank >> score >> tag) << line;
        EXPECT_EQ(q0, "Q0");
        n_unjudged += qid == "zz-unjudged";
    }
    EXPECT_EQ(n_lines, 10);
    EXPECT_EQ(n_unjudged, 5);
}

TEST(EvalCli, UsageAndInputErrors) {
    ASSERT_TRUE(exists(dre_bin)) << dre_bin << " is missing: build the dre_cli target";
    std::string out;
    EXPECT_EQ(run(quote(dre_bin) + " eval --help", &out), 0);
    EXPECT_NE(out.find("--qrels"), std::string::npos) << out;
    EXPECT_EQ(run(quote(dre_bin) + " eval --queries q.jsonl --qrels q.tsv 2>&1", &out), 2);
    EXPECT_NE(out.find("--index is required"), std::string::npos) << out;
    EXPECT_EQ(run(quote(dre_bin) + " eval --index x --queries q --qrels r -k 0 2>&1", &out), 2);

    char tmpl[] = "/tmp/dre_eval_cli_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dir = tmpl, bad = dir + "/bad.jsonl";
    std::ofstream(bad) << "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"a\", \"text\": \"y\"}\n";
    EXPECT_EQ(run(quote(dre_bin) + " eval --index " + quote(dir) + " --queries " + quote(bad) +
                      " --qrels " + quote(data_dir + "/qrels.tsv") + " 2>&1",
                  &out),
              1);
    EXPECT_NE(out.find("bad.jsonl:2: duplicate query id"), std::string::npos) << out;
    std::system(("rm -rf " + quote(dir)).c_str());
}

} // namespace
