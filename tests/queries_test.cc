// queries_test.cc — reading queries (JSONL, TSV, plain lines) and qrels: good files,
// and bad ones whose errors must name the file, the line and what was wrong.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

#include "dre.h"
#include "test_util.h"

namespace {

using namespace test_util;

std::string write_temp(const std::string &name, const std::string &body) {
    std::string path = ::testing::TempDir() + "dre_queries_" + name;
    std::ofstream f(path, std::ios::binary);
    f << body;
    return path;
}

// Opens a queries file that must fail; returns the status, with the message in *msg.
dre_status open_bad(const std::string &name, const std::string &body, std::string *msg) {
    dre_queries *q = nullptr;
    dre_status st = dre_queries_open(write_temp(name, body).c_str(), &q);
    *msg = dre_last_error();
    EXPECT_EQ(q, nullptr);
    dre_queries_close(q);
    return st;
}

dre_status open_bad_qrels(const std::string &name, const std::string &body, std::string *msg) {
    dre_qrels *q = nullptr;
    dre_status st = dre_qrels_open(write_temp(name, body).c_str(), &q);
    *msg = dre_last_error();
    EXPECT_EQ(q, nullptr);
    dre_qrels_close(q);
    return st;
}

TEST(Queries, BeirJsonl) {
    // BOM, CRLF, a blank line, BEIR's metadata field, an integer id, escapes
    std::string path =
        write_temp("good.jsonl", "\xEF\xBB\xBF{\"_id\": \"q1\", \"text\": \"what is bert\", "
                                 "\"metadata\": {}}\r\n"
                                 "\n"
                                 "{\"text\": \"caf\\u00e9 \\\"quoted\\\"\", \"_id\": 42}\n"
                                 "{\"_id\": \"q3\", \"text\": \"\"}");
    dre_queries *q = nullptr;
    ASSERT_EQ(dre_queries_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_queries_count(q), 3u);
    EXPECT_STREQ(dre_queries_id(q, 0), "q1");
    EXPECT_STREQ(dre_queries_text(q, 0), "what is bert");
    EXPECT_STREQ(dre_queries_id(q, 1), "42");
    EXPECT_STREQ(dre_queries_text(q, 1), "caf\xC3\xA9 \"quoted\"");
    EXPECT_STREQ(dre_queries_id(q, 2), "q3");
    EXPECT_STREQ(dre_queries_text(q, 2), "");
    EXPECT_EQ(dre_queries_id(q, 3), nullptr);
    dre_queries_close(q);
}

TEST(Queries, TsvWithAndWithoutHeader) {
    dre_queries *q = nullptr;
    std::string path = write_temp("h.tsv", "query-id\ttext\n7\tfirst query\n8\tsecond\twith tab\n");
    ASSERT_EQ(dre_queries_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_queries_count(q), 2u);
    EXPECT_STREQ(dre_queries_id(q, 0), "7");
    EXPECT_STREQ(dre_queries_text(q, 0), "first query");
    EXPECT_STREQ(dre_queries_text(q, 1), "second\twith tab");
    dre_queries_close(q);

    path = write_temp("noh.tsv", "1048585\twhat is paula deen's brother\r\n2\tandrew\r\n");
    ASSERT_EQ(dre_queries_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_queries_count(q), 2u);
    EXPECT_STREQ(dre_queries_id(q, 0), "1048585");
    EXPECT_STREQ(dre_queries_text(q, 0), "what is paula deen's brother");
    EXPECT_STREQ(dre_queries_text(q, 1), "andrew");
    dre_queries_close(q);
}

TEST(Queries, PlainLinesAreNumberedByLine) {
    dre_queries *q = nullptr;
    std::string path = write_temp("plain.txt", "first\n\nthird line\n");
    ASSERT_EQ(dre_queries_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_queries_count(q), 2u);
    EXPECT_STREQ(dre_queries_id(q, 0), "1");
    EXPECT_STREQ(dre_queries_text(q, 0), "first");
    EXPECT_STREQ(dre_queries_id(q, 1), "3");
    EXPECT_STREQ(dre_queries_text(q, 1), "third line");
    dre_queries_close(q);
}

TEST(Queries, ErrorsNameFileLineAndProblem) {
    std::string msg;
    EXPECT_EQ(open_bad("bad1.jsonl",
                       "{\"_id\": \"a\", \"text\": \"x\"}\n\n{\"_id\": \"b\", \"text\": \n", &msg),
              DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "bad1.jsonl:3:") && has(msg, "malformed JSON")) << msg;

    EXPECT_EQ(open_bad("bad2.jsonl", "{\"_id\": \"a\", \"text\": \"x\"} trailing\n", &msg),
              DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "bad2.jsonl:1:") && has(msg, "malformed JSON")) << msg;

    EXPECT_EQ(
        open_bad("bad3.jsonl", "{\"_id\": \"a\", \"text\": \"x\"}\n{\"text\": \"y\"}\n", &msg),
        DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "bad3.jsonl:2:") && has(msg, "missing field \"_id\"")) << msg;

    EXPECT_EQ(open_bad("bad4.jsonl", "{\"_id\": \"a\"}\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "bad4.jsonl:1:") && has(msg, "missing field \"text\"")) << msg;

    EXPECT_EQ(open_bad("bad5.jsonl", "{\"_id\": \"a\", \"text\": 3}\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "bad5.jsonl:1:") && has(msg, "\"text\" must be a string")) << msg;

    EXPECT_EQ(open_bad("bad6.jsonl", "[1, 2]\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "bad6.jsonl:1:") && has(msg, "malformed JSON")) << msg;

    EXPECT_EQ(open_bad("dup.jsonl",
                       "{\"_id\": \"a\", \"text\": \"x\"}\n{\"_id\": \"b\", \"text\": \"y\"}\n"
                       "{\"_id\": \"c\", \"text\": \"z\"}\n{\"_id\": \"b\", \"text\": \"w\"}\n",
                       &msg),
              DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "dup.jsonl:4:") && has(msg, "duplicate query id \"b\"") &&
                has(msg, "first at line 2"))
        << msg;

    EXPECT_EQ(open_bad("dup.tsv", "1\tx\n2\ty\n1\tz\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "dup.tsv:3:") && has(msg, "duplicate query id \"1\"")) << msg;

    EXPECT_EQ(open_bad("notab.tsv", "1\tx\nno tab here\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "notab.tsv:2:") && has(msg, "no tab")) << msg;

    EXPECT_EQ(open_bad("emptyid.tsv", "1\tx\n\ty\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "emptyid.tsv:2:") && has(msg, "empty query id")) << msg;

    dre_queries *q = nullptr;
    EXPECT_EQ(dre_queries_open("/nonexistent/dir/queries.jsonl", &q), DRE_ERR_IO);
    EXPECT_TRUE(has(dre_last_error(), "/nonexistent/dir/queries.jsonl")) << dre_last_error();
    EXPECT_EQ(dre_queries_open(nullptr, &q), DRE_ERR_INVALID_ARG);
}

TEST(Qrels, HeaderTrecFormatAndRepeats) {
    dre_qrels *q = nullptr;
    // BEIR header skipped; blank line and CRLF tolerated; repeated pair: later wins
    std::string path =
        write_temp("good.qrels.tsv", "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\n\nq1\td2\t0\n"
                                     "q2\td1\t2\nq1\td2\t2\n");
    ASSERT_EQ(dre_qrels_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_qrels_count(q), 2u);
    EXPECT_TRUE(dre_qrels_has_query(q, "q1"));
    EXPECT_TRUE(dre_qrels_has_query(q, "q2"));
    EXPECT_FALSE(dre_qrels_has_query(q, "query-id"));
    const char *docs[] = {"d2"};
    double scores[] = {1.0};
    dre_metrics m;
    ASSERT_EQ(dre_eval_query(q, "q1", docs, scores, 1, &m), DRE_OK) << dre_last_error();
    EXPECT_DOUBLE_EQ(m.recall_10, 0.5); // d2 is relevant (grade 2, the later line)
    EXPECT_DOUBLE_EQ(m.mrr_10, 1.0);
    dre_qrels_close(q);

    // no header: the first line is a judgement; TREC's four columns
    path = write_temp("trec.qrels", "301 0 FBIS3-10082 1\n301 0 FBIS3-10169 0\n302 0 X 2\n");
    ASSERT_EQ(dre_qrels_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_qrels_count(q), 2u);
    const char *trec_docs[] = {"FBIS3-10169", "FBIS3-10082"};
    double trec_scores[] = {2.0, 1.0};
    ASSERT_EQ(dre_eval_query(q, "301", trec_docs, trec_scores, 2, &m), DRE_OK);
    EXPECT_DOUBLE_EQ(m.mrr_10, 0.5);
    dre_qrels_close(q);

    path = write_temp("empty.qrels.tsv", "query-id\tcorpus-id\tscore\n");
    ASSERT_EQ(dre_qrels_open(path.c_str(), &q), DRE_OK) << dre_last_error();
    EXPECT_EQ(dre_qrels_count(q), 0u);
    EXPECT_EQ(dre_eval_query(q, "q1", docs, scores, 1, &m), DRE_ERR_INVALID_ARG);
    dre_qrels_close(q);
}

TEST(Qrels, ErrorsNameFileLineAndProblem) {
    std::string msg;
    EXPECT_EQ(open_bad_qrels("q1.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n", &msg),
              DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "q1.tsv:3:") && has(msg, "found 2 fields")) << msg;

    EXPECT_EQ(
        open_bad_qrels("q2.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\thigh\n", &msg),
        DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "q2.tsv:3:") && has(msg, "score \"high\" is not an integer")) << msg;

    EXPECT_EQ(open_bad_qrels("q3.tsv", "q1\td1\t1\nq1\td2\t0.5\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "q3.tsv:2:") && has(msg, "not an integer")) << msg;

    EXPECT_EQ(open_bad_qrels("q4.tsv", "q1\td1\t1\nq1\td2\t1\t0\t7\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "q4.tsv:2:") && has(msg, "more than 4 fields")) << msg;

    EXPECT_EQ(open_bad_qrels("q5.tsv", "q1\td1\t1\n\td2\t1\n", &msg), DRE_ERR_FORMAT);
    EXPECT_TRUE(has(msg, "q5.tsv:2:") && has(msg, "empty query id")) << msg;

    dre_qrels *q = nullptr;
    EXPECT_EQ(dre_qrels_open("/nonexistent/qrels.tsv", &q), DRE_ERR_IO);
    EXPECT_TRUE(has(dre_last_error(), "/nonexistent/qrels.tsv")) << dre_last_error();
}

} // namespace
