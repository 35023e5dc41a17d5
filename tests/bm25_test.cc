// bm25_test.cc — BM25 in the docstore: FTS5 expressions built from hostile query strings
// (every token a quoted phrase, OR-ed: no syntax error, no operator, column filter or
// prefix can take effect), and search results equal to SQLite FTS5 run from Python
// (tools/fixtures/make_bm25_fixtures.py -> tests/fixtures/bm25_reference.json) on the demo corpus
// (index built while documents are added) and on SciFact (built over the finished table).
// Also: truncation forgets BM25 rows, and read-only reopening keeps them.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "index/docstore.h"
#include "test_util.h"
#include "text/corpus.h"

namespace {

using namespace test_util;

const std::string kSource = DRE_SOURCE_DIR;

class Bm25Test : public ::testing::Test {
  protected:
    std::string dir;
    docstore *ds = nullptr;
    void SetUp() override {
        char tmpl[] = "/tmp/dre_bm25_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        ASSERT_EQ(dre_docstore_open((dir + "/scratch.sqlite").c_str(), 1, &ds), DRE_OK)
            << dre_last_error();
    }
    void TearDown() override {
        dre_docstore_close(ds);
        std::string cmd = "rm -rf '" + dir + "'";
        ASSERT_EQ(system(cmd.c_str()), 0);
    }

    std::string expression(const std::string &query) {
        char *expr = nullptr;
        EXPECT_EQ(dre_docstore_bm25_expression(ds, query.data(), query.size(), &expr), DRE_OK)
            << dre_last_error();
        std::string s = expr ? expr : "<null>";
        free(expr);
        return s;
    }
};

// Reads a corpus into a docstore at path: rows in file order. With bm25_first the FTS5
// table exists before the documents arrive (as in an embed), else it is built after.
docstore *load_corpus(const std::string &corpus, const std::string &path, bool bm25_first) {
    docstore *ds = nullptr;
    EXPECT_EQ(dre_docstore_open(path.c_str(), 1, &ds), DRE_OK) << dre_last_error();
    if (!ds) return nullptr;
    if (bm25_first) EXPECT_EQ(dre_docstore_add_bm25(ds), DRE_OK) << dre_last_error();
    dre_corpus *r = nullptr;
    EXPECT_EQ(dre_corpus_open(corpus.c_str(), DRE_CORPUS_AUTO, nullptr, nullptr, nullptr, &r),
              DRE_OK)
        << dre_last_error();
    if (!r) return ds;
    EXPECT_EQ(dre_docstore_begin(ds), DRE_OK);
    int64_t row = 0;
    for (;;) {
        dre_corpus_doc rec;
        int got = 0;
        EXPECT_EQ(dre_corpus_next(r, &rec, &got), DRE_OK) << dre_last_error();
        if (!got) break;
        int64_t dup = -1;
        EXPECT_EQ(dre_docstore_add(ds, row++, rec.id, rec.title, rec.text, &dup), DRE_OK)
            << dre_last_error();
    }
    dre_corpus_close(r);
    EXPECT_EQ(dre_docstore_commit(ds), DRE_OK);
    if (!bm25_first) EXPECT_EQ(dre_docstore_add_bm25(ds), DRE_OK) << dre_last_error();
    return ds;
}

TEST_F(Bm25Test, HostileQueriesBecomeOrOfQuotedTerms) {
    struct {
        std::string query, want;
    } cases[] = {
        {"hello world", "\"hello\" OR \"world\""},
        {"title:foo", "\"title\" OR \"foo\""},
        {"{title text}: x", "\"title\" OR \"text\" OR \"x\""},
        {"NEAR(a b, 3)", "\"NEAR\" OR \"a\" OR \"b\" OR \"3\""},
        {"foo* AND -bar OR NOT \"baz qux\"",
         "\"foo\" OR \"AND\" OR \"bar\" OR \"OR\" OR \"NOT\" OR \"baz\" OR \"qux\""},
        {"\"unbalanced", "\"unbalanced\""},
        {"^start a+b", "\"start\" OR \"a\" OR \"b\""},
        {"a\x01"
         "b\tc\x7f"
         "d\x1b[0m",
         "\"a\" OR \"b\" OR \"c\" OR \"d\" OR \"0m\""},
        {"Caf\xC3\xA9 na\xC3\xAFve", "\"Caf\xC3\xA9\" OR \"na\xC3\xAFve\""}, // bytes kept
        {"", ""},
        {"  \t\n ", ""},
        {"*:^\"(){}-+,.", ""},
        {std::string("nul\0byte", 8), "\"nul\" OR \"byte\""},
    };
    for (auto &c : cases)
        EXPECT_EQ(expression(c.query), c.want) << "query: " << c.query;
}

// Whatever the bytes, the expression parses and the search runs.
TEST_F(Bm25Test, NoQueryIsASyntaxError) {
    ASSERT_EQ(dre_docstore_add_bm25(ds), DRE_OK) << dre_last_error();
    int64_t dup;
    ASSERT_EQ(dre_docstore_add(ds, 0, "d0", "a title", "some text with words", &dup), DRE_OK);
    std::vector<std::string> queries = {
        "\"",
        "\"\"",
        "\"a\" \"",
        "*",
        "a*",
        "NEAR(",
        "NEAR()",
        "(",
        ")",
        "a:",
        ":a",
        "-",
        "+",
        "AND",
        "OR",
        "NOT",
        "a AND",
        "NOT a",
        "^",
        "{",
        "}",
        "{text}",
        "text : words",
        "\xff\xfe\xfd",
        "caf\xc3",
        "\xc3\x28",
        "\xe2\x82",
        "w\xf0\x9f\x98ords",
        "\xed\xa0\x80",
        "\x80\x81\xbf words \xb5",
        "a\"b\"c",
        "\\\"",
        "''",
        "'a'",
        "`a`",
        "%_",
        std::string(5000, '"'),
        std::string(100000, 'a'),
    };
    std::string many;
    for (int i = 0; i < 3000; i++)
        many += "w" + std::to_string(i) + (i % 2 ? " OR " : " \"");
    queries.push_back(many);
    for (int b = 1; b < 256; b++)
        queries.push_back(std::string("words") + (char)b + "text" + (char)b);
    for (auto &q : queries) {
        std::vector<int64_t> rows(5);
        std::vector<double> scores(5);
        int32_t n = -1;
        ASSERT_EQ(
            dre_docstore_bm25_search(ds, q.data(), q.size(), 5, rows.data(), scores.data(), &n),
            DRE_OK)
            << "query of " << q.size() << " bytes: " << dre_last_error();
        EXPECT_GE(n, 0);
    }
}

// dre's BM25 equals FTS5 run from Python with the terms FTS5's tokenizer finds.
TEST_F(Bm25Test, ResultsEqualThePythonReference) {
    cJSON *ref = cJSON_Parse(read_text(kSource + "/tests/fixtures/bm25_reference.json").c_str());
    ASSERT_NE(ref, nullptr) << "tests/fixtures/bm25_reference.json: run "
                               "tools/fixtures/make_bm25_fixtures.py";
    EXPECT_STREQ(cJSON_GetObjectItem(ref, "tokenizer")->valuestring, DOCSTORE_BM25_TOKENIZER);
    int k = cJSON_GetObjectItem(ref, "k")->valueint;
    const cJSON *set;
    int set_no = 0, n_queries = 0;
    cJSON_ArrayForEach(set, cJSON_GetObjectItem(ref, "sets")) {
        std::string corpus = kSource + "/" + cJSON_GetObjectItem(set, "corpus")->valuestring;
        ASSERT_TRUE(exists(corpus)) << corpus;
        std::string path = dir + "/set" + std::to_string(set_no) + ".sqlite";
        docstore *store = load_corpus(corpus, path, set_no == 0);
        ASSERT_NE(store, nullptr);
        ASSERT_TRUE(dre_docstore_has_bm25(store));
        const cJSON *q;
        cJSON_ArrayForEach(q, cJSON_GetObjectItem(set, "queries")) {
            std::string text = cJSON_GetObjectItem(q, "text")->valuestring;
            const cJSON *top = cJSON_GetObjectItem(q, "top");
            std::vector<int64_t> rows(k);
            std::vector<double> scores(k);
            int32_t n = -1;
            ASSERT_EQ(dre_docstore_bm25_search(store, text.data(), text.size(), k, rows.data(),
                                               scores.data(), &n),
                      DRE_OK)
                << dre_last_error();
            ASSERT_EQ(n, cJSON_GetArraySize(top)) << "query: " << text;
            for (int i = 0; i < n; i++) {
                const cJSON *want = cJSON_GetArrayItem(top, i);
                dre_doc doc;
                ASSERT_EQ(dre_docstore_get(store, rows[i], &doc), DRE_OK);
                EXPECT_STREQ(doc.id, cJSON_GetObjectItem(want, "id")->valuestring)
                    << "query: " << text << ", rank " << i + 1;
                double w = cJSON_GetObjectItem(want, "score")->valuedouble;
                EXPECT_NEAR(scores[i], w, 1e-9 * std::fabs(w)) << "query: " << text;
                dre_doc_clear(&doc);
            }
            n_queries++;
        }
        dre_docstore_close(store);
        set_no++;
    }
    EXPECT_EQ(set_no, 2);
    EXPECT_GE(n_queries, 200);
    cJSON_Delete(ref);
}

// An interrupted embed's tail is cut off, BM25 entries included; the FTS5 index stays
// consistent with the documents (FTS5's integrity check), and survives read-only reopening.
TEST_F(Bm25Test, TruncateForgetsBm25Rows) {
    ASSERT_EQ(dre_docstore_add_bm25(ds), DRE_OK) << dre_last_error();
    int64_t dup;
    ASSERT_EQ(dre_docstore_begin(ds), DRE_OK);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(dre_docstore_add(ds, i, ("d" + std::to_string(i)).c_str(), nullptr,
                                   ("shared unique" + std::to_string(i)).c_str(), &dup),
                  DRE_OK);
    ASSERT_EQ(dre_docstore_commit(ds), DRE_OK);
    ASSERT_EQ(dre_docstore_truncate(ds, 6), DRE_OK) << dre_last_error();
    std::vector<int64_t> rows(20);
    std::vector<double> scores(20);
    int32_t n = 0;
    ASSERT_EQ(dre_docstore_bm25_search(ds, "shared", 6, 20, rows.data(), scores.data(), &n),
              DRE_OK);
    EXPECT_EQ(n, 6);
    for (int i = 0; i < n; i++)
        EXPECT_LT(rows[i], 6);
    ASSERT_EQ(dre_docstore_bm25_search(ds, "unique7", 7, 20, rows.data(), scores.data(), &n),
              DRE_OK);
    EXPECT_EQ(n, 0);
    dre_docstore_close(ds);
    ds = nullptr;

    sqlite3 *db = nullptr;
    ASSERT_EQ(sqlite3_open((dir + "/scratch.sqlite").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "INSERT INTO docs_fts (docs_fts) VALUES ('integrity-check')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);

    ASSERT_EQ(dre_docstore_open((dir + "/scratch.sqlite").c_str(), 0, &ds), DRE_OK);
    EXPECT_TRUE(dre_docstore_has_bm25(ds));
    ASSERT_EQ(dre_docstore_bm25_search(ds, "unique3", 7, 20, rows.data(), scores.data(), &n),
              DRE_OK);
    ASSERT_EQ(n, 1);
    EXPECT_EQ(rows[0], 3);
    EXPECT_GT(scores[0], 0);
}

// Documents of the same text score the same: they come back by ascending row, as FTS5's
// "ORDER BY bm25(docs_fts), rowid" (and the Python reference) orders them, whatever k cuts.
TEST_F(Bm25Test, EqualScoresComeBackByRow) {
    ASSERT_EQ(dre_docstore_add_bm25(ds), DRE_OK) << dre_last_error();
    int64_t dup;
    ASSERT_EQ(dre_docstore_begin(ds), DRE_OK);
    const char *texts[] = {"other words", "quiet lake", "quiet lake",
                           "other",       "quiet lake", "quiet lake and more words",
                           "quiet lake"};
    for (int i = 0; i < 7; i++)
        ASSERT_EQ(
            dre_docstore_add(ds, i, ("d" + std::to_string(i)).c_str(), nullptr, texts[i], &dup),
            DRE_OK);
    ASSERT_EQ(dre_docstore_commit(ds), DRE_OK);
    std::vector<int64_t> rows(10);
    std::vector<double> scores(10);
    int32_t n = 0;
    ASSERT_EQ(dre_docstore_bm25_search(ds, "lake", 4, 10, rows.data(), scores.data(), &n), DRE_OK);
    ASSERT_EQ(n, 5);
    EXPECT_EQ(std::vector<int64_t>(rows.begin(), rows.begin() + 5),
              (std::vector<int64_t>{1, 2, 4, 6, 5}));
    EXPECT_EQ(scores[0], scores[3]) << "the four equal documents score the same";
    EXPECT_GT(scores[3], scores[4]);
    ASSERT_EQ(dre_docstore_bm25_search(ds, "lake", 4, 2, rows.data(), scores.data(), &n), DRE_OK);
    ASSERT_EQ(n, 2);
    EXPECT_EQ(rows[0], 1);
    EXPECT_EQ(rows[1], 2);
}

TEST_F(Bm25Test, StoreWithoutBm25SaysHowToAddIt) {
    EXPECT_FALSE(dre_docstore_has_bm25(ds));
    int64_t row;
    double score;
    int32_t n;
    EXPECT_EQ(dre_docstore_bm25_search(ds, "x", 1, 1, &row, &score, &n), DRE_ERR_UNSUPPORTED);
    EXPECT_TRUE(has(dre_last_error(), "add-bm25")) << dre_last_error();
}

} // namespace
