// docstore_test.cc — the SQLite docstore: rows in, rows out, duplicates refused,
// transactions, truncation after an interrupted run, read-only reopening, copies.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

extern "C" {
#include "index/docstore.h"
}

namespace {

class DocstoreTest : public ::testing::Test {
  protected:
    std::string dir, path;
    void SetUp() override {
        char tmpl[] = "/tmp/dre_docstore_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
        path = dir + "/docs.sqlite";
    }
    void TearDown() override {
        std::string cmd = "rm -rf '" + dir + "'";
        ASSERT_EQ(system(cmd.c_str()), 0);
    }
};

TEST_F(DocstoreTest, AddGetCountAndReadOnlyReopen) {
    docstore *ds = nullptr;
    ASSERT_EQ(dre_docstore_open(path.c_str(), 1, &ds), DRE_OK) << dre_last_error();
    int64_t count = -1, dup = 0;
    ASSERT_EQ(dre_docstore_count(ds, &count), DRE_OK);
    EXPECT_EQ(count, 0);
    ASSERT_EQ(dre_docstore_begin(ds), DRE_OK);
    ASSERT_EQ(dre_docstore_add(ds, 0, "d0", "Title zero", "text zero", &dup), DRE_OK);
    EXPECT_EQ(dup, -1);
    ASSERT_EQ(dre_docstore_add(ds, 1, "d1", nullptr, "text one \xC3\xA9", &dup), DRE_OK);
    ASSERT_EQ(dre_docstore_commit(ds), DRE_OK);
    ASSERT_EQ(dre_docstore_count(ds, &count), DRE_OK);
    EXPECT_EQ(count, 2);
    dre_docstore_close(ds);
    // A closed writer leaves one file: no write-ahead log beside it.
    EXPECT_NE(access((path + "-wal").c_str(), F_OK), 0);

    ASSERT_EQ(dre_docstore_open(path.c_str(), 0, &ds), DRE_OK) << dre_last_error();
    dre_doc doc;
    ASSERT_EQ(dre_docstore_get(ds, 1, &doc), DRE_OK);
    EXPECT_EQ(doc.row, 1);
    EXPECT_STREQ(doc.id, "d1");
    EXPECT_STREQ(doc.title, ""); // no title reads back as ""
    EXPECT_STREQ(doc.text, "text one \xC3\xA9");
    free(doc.id);
    free(doc.title);
    free(doc.text);
    EXPECT_EQ(dre_docstore_get(ds, 7, &doc), DRE_ERR_INVALID_ARG);
    int64_t row = -5;
    ASSERT_EQ(dre_docstore_find(ds, "d0", &row), DRE_OK);
    EXPECT_EQ(row, 0);
    ASSERT_EQ(dre_docstore_find(ds, "absent", &row), DRE_OK);
    EXPECT_EQ(row, -1);
    EXPECT_EQ(dre_docstore_add(ds, 2, "x", nullptr, "y", &dup), DRE_ERR_INVALID_ARG); // read-only
    dre_docstore_close(ds);
}

TEST_F(DocstoreTest, DuplicateIdIsReportedNotAdded) {
    docstore *ds = nullptr;
    ASSERT_EQ(dre_docstore_open(path.c_str(), 1, &ds), DRE_OK);
    int64_t dup = 0, count = 0;
    ASSERT_EQ(dre_docstore_begin(ds), DRE_OK);
    ASSERT_EQ(dre_docstore_add(ds, 0, "same", "a", "b", &dup), DRE_OK);
    ASSERT_EQ(dre_docstore_add(ds, 1, "same", "c", "d", &dup), DRE_OK);
    EXPECT_EQ(dup, 0);
    ASSERT_EQ(dre_docstore_add(ds, 1, "other", "c", "d", &dup), DRE_OK); // row 1 still free
    EXPECT_EQ(dup, -1);
    ASSERT_EQ(dre_docstore_commit(ds), DRE_OK);
    ASSERT_EQ(dre_docstore_count(ds, &count), DRE_OK);
    EXPECT_EQ(count, 2);
    dre_docstore_close(ds);
}

TEST_F(DocstoreTest, UncommittedTransactionIsRolledBackAndTruncateDropsTail) {
    docstore *ds = nullptr;
    ASSERT_EQ(dre_docstore_open(path.c_str(), 1, &ds), DRE_OK);
    int64_t dup = 0, count = 0;
    ASSERT_EQ(dre_docstore_begin(ds), DRE_OK);
    for (int i = 0; i < 10; i++) {
        std::string id = "d" + std::to_string(i);
        ASSERT_EQ(dre_docstore_add(ds, i, id.c_str(), nullptr, "t", &dup), DRE_OK);
    }
    ASSERT_EQ(dre_docstore_sync(ds), DRE_OK); // commits
    ASSERT_EQ(dre_docstore_begin(ds), DRE_OK);
    ASSERT_EQ(dre_docstore_add(ds, 10, "d10", nullptr, "t", &dup), DRE_OK);
    dre_docstore_close(ds); // closing inside a transaction rolls it back

    ASSERT_EQ(dre_docstore_open(path.c_str(), 1, &ds), DRE_OK);
    ASSERT_EQ(dre_docstore_count(ds, &count), DRE_OK);
    EXPECT_EQ(count, 10);
    ASSERT_EQ(dre_docstore_truncate(ds, 6), DRE_OK);
    ASSERT_EQ(dre_docstore_count(ds, &count), DRE_OK);
    EXPECT_EQ(count, 6);
    int64_t row = 0;
    ASSERT_EQ(dre_docstore_find(ds, "d7", &row), DRE_OK);
    EXPECT_EQ(row, -1);
    // The id of a truncated row may be added again.
    ASSERT_EQ(dre_docstore_add(ds, 6, "d7", nullptr, "t", &dup), DRE_OK);
    EXPECT_EQ(dup, -1);
    dre_docstore_close(ds);
}

TEST_F(DocstoreTest, CopyMakesAnIndependentDatabase) {
    docstore *ds = nullptr;
    int64_t dup = 0, count = 0;
    ASSERT_EQ(dre_docstore_open(path.c_str(), 1, &ds), DRE_OK);
    ASSERT_EQ(dre_docstore_add(ds, 0, "a", "t", "x", &dup), DRE_OK);
    dre_docstore_close(ds);
    std::string copy = dir + "/copy.sqlite";
    ASSERT_EQ(dre_docstore_copy(path.c_str(), copy.c_str()), DRE_OK) << dre_last_error();
    ASSERT_EQ(dre_docstore_open(copy.c_str(), 1, &ds), DRE_OK);
    ASSERT_EQ(dre_docstore_add(ds, 1, "b", "t", "y", &dup), DRE_OK);
    ASSERT_EQ(dre_docstore_count(ds, &count), DRE_OK);
    EXPECT_EQ(count, 2);
    dre_docstore_close(ds);
    ASSERT_EQ(dre_docstore_open(path.c_str(), 0, &ds), DRE_OK);
    ASSERT_EQ(dre_docstore_count(ds, &count), DRE_OK);
    EXPECT_EQ(count, 1);
    dre_docstore_close(ds);
}

TEST_F(DocstoreTest, MissingFileReadOnlyIsAnError) {
    docstore *ds = nullptr;
    std::string missing = dir + "/none.sqlite";
    EXPECT_NE(dre_docstore_open(missing.c_str(), 0, &ds), DRE_OK);
    EXPECT_EQ(ds, nullptr);
    EXPECT_NE(std::string(dre_last_error()).find(missing), std::string::npos);
}

} // namespace
