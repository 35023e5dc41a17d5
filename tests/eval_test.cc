// eval_test.cc — dre_eval_query against pytrec_eval: the runs, qrels and per-query
// reference metrics in tests/fixtures/eval_* come from tools/fixtures/make_eval_fixtures.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "dre.h"
#include "test_util.h"

namespace {

using namespace test_util;

struct ranked {
    std::vector<std::string> docs;
    std::vector<double> scores;
};

struct eval_case {
    dre_qrels *qrels = nullptr;
    std::map<std::string, ranked> run;              // file order within a query
    std::map<std::string, std::vector<double>> ref; // ndcg_10, recall_10, recall_100, mrr_10
    std::vector<double> mean;
    long n_mean = 0;
    std::vector<std::string> skipped, empty;
    ~eval_case() { dre_qrels_close(qrels); }
};

std::string fixture(const std::string &name) {
    return std::string(DRE_SOURCE_DIR) + "/tests/fixtures/eval_" + name;
}

void load_case(const std::string &name, eval_case *c) {
    ASSERT_EQ(dre_qrels_open(fixture(name + ".qrels.tsv").c_str(), &c->qrels), DRE_OK)
        << dre_last_error();
    std::ifstream run(fixture(name + ".run.tsv"));
    ASSERT_TRUE(run) << "missing fixture; run tools/fixtures/make_eval_fixtures.py";
    std::string line;
    while (std::getline(run, line)) {
        auto f = split_tabs(line);
        ASSERT_EQ(f.size(), 3u) << line;
        c->run[f[0]].docs.push_back(f[1]);
        c->run[f[0]].scores.push_back(std::strtod(f[2].c_str(), nullptr));
    }
    std::ifstream ref(fixture(name + ".ref.tsv"));
    ASSERT_TRUE(ref);
    while (std::getline(ref, line)) {
        auto f = split_tabs(line);
        if (f[0] == "#mean") {
            ASSERT_EQ(f.size(), 6u);
            c->n_mean = std::strtol(f[1].c_str(), nullptr, 10);
            for (int i = 2; i < 6; i++)
                c->mean.push_back(std::strtod(f[i].c_str(), nullptr));
        } else if (f[0] == "#skip") {
            c->skipped.push_back(f[1]);
        } else if (f[0] == "#empty") {
            c->empty.push_back(f[1]);
            c->run[f[1]]; // a query with an empty ranking
        } else {
            ASSERT_EQ(f.size(), 5u) << line;
            for (int i = 1; i < 5; i++)
                c->ref[f[0]].push_back(std::strtod(f[i].c_str(), nullptr));
        }
    }
    ASSERT_FALSE(c->ref.empty());
    ASSERT_EQ(c->mean.size(), 4u);
}

dre_status eval(const eval_case &c, const std::string &qid, const ranked &r, bool with_scores,
                dre_metrics *m) {
    std::vector<const char *> ids;
    for (auto &d : r.docs)
        ids.push_back(d.c_str());
    return dre_eval_query(c.qrels, qid.c_str(), ids.data(), with_scores ? r.scores.data() : nullptr,
                          (int32_t)ids.size(), m);
}

void expect_metrics(const dre_metrics &m, const std::vector<double> &ref, const std::string &what) {
    EXPECT_NEAR(m.ndcg_10, ref[0], 1e-9) << what << " nDCG@10";
    EXPECT_NEAR(m.recall_10, ref[1], 1e-9) << what << " Recall@10";
    EXPECT_NEAR(m.recall_100, ref[2], 1e-9) << what << " Recall@100";
    EXPECT_NEAR(m.mrr_10, ref[3], 1e-9) << what << " MRR@10";
}

class EvalFixture : public ::testing::TestWithParam<const char *> {};

TEST_P(EvalFixture, MatchesPytrecEvalPerQueryAndMean) {
    eval_case c;
    load_case(GetParam(), &c);
    if (HasFatalFailure()) return;
    double sum[4] = {0, 0, 0, 0};
    long n = 0, n_skipped = 0;
    for (auto &[qid, r] : c.run) {
        dre_metrics m;
        dre_status st = eval(c, qid, r, true, &m);
        if (!dre_qrels_has_query(c.qrels, qid.c_str())) {
            EXPECT_EQ(st, DRE_ERR_INVALID_ARG) << qid << " has no judgements";
            EXPECT_NE(std::strstr(dre_last_error(), "no judgements"), nullptr) << dre_last_error();
            n_skipped++;
            continue;
        }
        ASSERT_EQ(st, DRE_OK) << qid << ": " << dre_last_error();
        ASSERT_TRUE(c.ref.count(qid)) << qid << " scored but not in the reference";
        EXPECT_EQ(m.n_queries, 1);
        expect_metrics(m, c.ref[qid], GetParam() + std::string(" ") + qid);
        sum[0] += m.ndcg_10;
        sum[1] += m.recall_10;
        sum[2] += m.recall_100;
        sum[3] += m.mrr_10;
        n++;
    }
    // the mean is over the queries that have judgements and appear in the run
    EXPECT_EQ(n, c.n_mean);
    EXPECT_EQ(n_skipped, (long)c.skipped.size());
    for (int i = 0; i < 4; i++)
        EXPECT_NEAR(sum[i] / (double)n, c.mean[i], 1e-9) << "mean " << i;
}

TEST_P(EvalFixture, InputOrderDoesNotMatterWithScores) {
    eval_case c;
    load_case(GetParam(), &c);
    if (HasFatalFailure()) return;
    for (auto &[qid, r] : c.ref) {
        ranked rev = c.run[qid];
        std::reverse(rev.docs.begin(), rev.docs.end());
        std::reverse(rev.scores.begin(), rev.scores.end());
        dre_metrics m;
        ASSERT_EQ(eval(c, qid, rev, true, &m), DRE_OK) << dre_last_error();
        expect_metrics(m, r, qid + " reversed");
    }
}

INSTANTIATE_TEST_SUITE_P(Pytrec, EvalFixture,
                         ::testing::Values("random", "ties", "float_ties", "short", "trec"));

TEST(Eval, FixturesHaveTheEdgeCases) {
    eval_case c;
    load_case("short", &c);
    if (HasFatalFailure()) return;
    EXPECT_FALSE(c.skipped.empty()) << "a run query without judgements";
    EXPECT_FALSE(c.empty.empty()) << "a query with an empty ranking";
    EXPECT_TRUE(c.ref.count("q-many")) << "a query with > 100 relevant docs";
    EXPECT_TRUE(dre_qrels_has_query(c.qrels, "q-notrun"));
    EXPECT_FALSE(c.ref.count("q-notrun")) << "judged but not in the run: not averaged";
}

std::string write_temp(const std::string &name, const std::string &body) {
    std::string path = ::testing::TempDir() + "dre_eval_" + name;
    std::ofstream(path) << body;
    return path;
}

// qrels {d1: 1, d2: 2}, run d3 0.9, d1 0.5, d2 0.5: the tie puts d2 before d1 (doc id
// descending). pytrec_eval 0.5 (trec_eval 9) gives ndcg_cut_10 0.66967181649423,
// recip_rank 0.5.
TEST(Eval, SmallExampleFromPytrecEval) {
    std::string path = write_temp("small.tsv", "query-id\tcorpus-id\tscore\na\td1\t1\na\td2\t2\n");
    dre_qrels *q = nullptr;
    ASSERT_EQ(dre_qrels_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    const char *docs[] = {"d3", "d1", "d2"};
    double scores[] = {0.9, 0.5, 0.5};
    dre_metrics m;
    ASSERT_EQ(dre_eval_query(q, "a", docs, scores, 3, &m), DRE_OK) << dre_last_error();
    EXPECT_NEAR(m.ndcg_10, 0.66967181649423, 1e-12);
    EXPECT_DOUBLE_EQ(m.recall_10, 1.0);
    EXPECT_DOUBLE_EQ(m.recall_100, 1.0);
    EXPECT_DOUBLE_EQ(m.mrr_10, 0.5);
    // without scores the given order stands: d3, d1 (grade 1), d2 (grade 2)
    ASSERT_EQ(dre_eval_query(q, "a", docs, nullptr, 3, &m), DRE_OK);
    double dcg = 1.0 / std::log2(3.0) + 2.0 / std::log2(4.0), ideal = 2.0 + 1.0 / std::log2(3.0);
    EXPECT_NEAR(m.ndcg_10, dcg / ideal, 1e-12);
    EXPECT_DOUBLE_EQ(m.mrr_10, 0.5);
    dre_qrels_close(q);
}

TEST(Eval, RejectsBadRankings) {
    std::string path = write_temp("bad.tsv", "a\td1\t1\n");
    dre_qrels *q = nullptr;
    ASSERT_EQ(dre_qrels_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    dre_metrics m;
    const char *twice[] = {"d1", "d2", "d1"};
    double scores[] = {0.3, 0.2, 0.1};
    EXPECT_EQ(dre_eval_query(q, "a", twice, scores, 3, &m), DRE_ERR_INVALID_ARG);
    EXPECT_NE(std::strstr(dre_last_error(), "listed twice"), nullptr) << dre_last_error();
    const char *two[] = {"d1", "d2"};
    double nan_scores[] = {0.5, std::nan("")};
    EXPECT_EQ(dre_eval_query(q, "a", two, nan_scores, 2, &m), DRE_ERR_INVALID_ARG);
    EXPECT_EQ(dre_eval_query(q, "a", two, scores, -1, &m), DRE_ERR_INVALID_ARG);
    EXPECT_EQ(dre_eval_query(q, "b", two, scores, 2, &m), DRE_ERR_INVALID_ARG);
    // an empty ranking of a judged query scores zero
    ASSERT_EQ(dre_eval_query(q, "a", nullptr, nullptr, 0, &m), DRE_OK);
    EXPECT_EQ(m.ndcg_10, 0.0);
    EXPECT_EQ(m.recall_100, 0.0);
    EXPECT_EQ(m.n_queries, 1);
    dre_qrels_close(q);
}

} // namespace
