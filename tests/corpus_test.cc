// corpus_test.cc — the streaming corpus reader: BEIR JSONL, TSV, lines; the text BEIR
// embeds; every kind of bad line reported as "file:line: what"; offsets for resume.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "text/corpus.h"
}

namespace {

struct doc {
    std::string id, title, text, joined;
    bool has_title;
    int64_t line;
};

// One result of dre_corpus_next: a document, a bad line (its message), or the end.
struct step {
    dre_status status;
    doc d;
    std::string error;
};

class CorpusTest : public ::testing::Test {
  protected:
    std::string dir;

    void SetUp() override {
        char tmpl[] = "/tmp/dre_corpus_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir = tmpl;
    }
    void TearDown() override {
        std::string cmd = "rm -rf '" + dir + "'";
        ASSERT_EQ(system(cmd.c_str()), 0);
    }

    std::string write(const std::string &name, const std::string &bytes) {
        std::string path = dir + "/" + name;
        FILE *f = fopen(path.c_str(), "wb");
        EXPECT_NE(f, nullptr);
        fwrite(bytes.data(), 1, bytes.size(), f);
        fclose(f);
        return path;
    }

    // Reads the whole file, skipping bad lines, and returns every step.
    std::vector<step> read_all(const std::string &path, dre_corpus_format format = DRE_CORPUS_AUTO,
                               const char *id_field = nullptr, const char *title_field = nullptr,
                               const char *text_field = nullptr) {
        std::vector<step> steps;
        dre_corpus *r = nullptr;
        dre_status st =
            dre_corpus_open(path.c_str(), format, id_field, title_field, text_field, &r);
        EXPECT_EQ(st, DRE_OK) << dre_last_error();
        if (st != DRE_OK) return steps;
        for (int guard = 0; guard < 1000; guard++) {
            dre_corpus_doc rec;
            int got = 0;
            st = dre_corpus_next(r, &rec, &got);
            if (st != DRE_OK) {
                steps.push_back({st, {}, dre_last_error()});
                if (st != DRE_ERR_FORMAT) break;
                continue;
            }
            if (!got) break;
            doc d{rec.id,
                  rec.title ? rec.title : "",
                  rec.text,
                  std::string(rec.joined, rec.joined_len),
                  rec.title != nullptr,
                  rec.line};
            EXPECT_EQ(strlen(rec.joined), rec.joined_len);
            steps.push_back({DRE_OK, d, ""});
        }
        dre_corpus_close(r);
        return steps;
    }
};

TEST_F(CorpusTest, BeirJsonlJoinsTitleAndTextAsBeirDoes) {
    std::string path =
        write("c.jsonl", "{\"_id\": \"d1\", \"title\": \"A Title\", \"text\": \"Body text.\"}\n"
                         "{\"_id\": \"d2\", \"title\": \"\", \"text\": \"  only body \"}\n"
                         "{\"_id\": \"d3\", \"text\": \"no title field\"}\n"
                         "{\"_id\": \"d4\", \"title\": null, \"text\": \"null title\"}\n"
                         "{\"_id\": 42, \"title\": \"T\", \"text\": \"\"}\n");
    auto s = read_all(path);
    ASSERT_EQ(s.size(), 5u);
    for (auto &x : s)
        ASSERT_EQ(x.status, DRE_OK) << x.error;
    // BEIR: (title + " " + text).strip() if "title" in doc else text.strip()
    EXPECT_EQ(s[0].d.joined, "A Title Body text.");
    EXPECT_EQ(s[0].d.title, "A Title");
    EXPECT_EQ(s[0].d.text, "Body text.");
    EXPECT_EQ(s[1].d.joined, "only body");
    EXPECT_TRUE(s[1].d.has_title);
    EXPECT_EQ(s[2].d.joined, "no title field");
    EXPECT_FALSE(s[2].d.has_title);
    EXPECT_FALSE(s[3].d.has_title);
    EXPECT_EQ(s[4].d.id, "42"); // an integer id keeps its decimal text
    EXPECT_EQ(s[4].d.joined, "T");
    EXPECT_EQ(s[4].d.line, 5);
}

TEST_F(CorpusTest, DemoCorpusReadsEightyDocuments) {
    auto s = read_all(DRE_SOURCE_DIR "/tests/data/papers.jsonl");
    ASSERT_EQ(s.size(), 80u);
    for (auto &x : s) {
        ASSERT_EQ(x.status, DRE_OK) << x.error;
        EXPECT_TRUE(x.d.has_title);
        EXPECT_FALSE(x.d.text.empty());
    }
    EXPECT_EQ(s[0].d.id, "p001");
}

TEST_F(CorpusTest, CustomFieldNames) {
    std::string path = write("c.jsonl", "{\"docid\": \"x\", \"head\": \"H\", \"body\": \"B\"}\n");
    auto s = read_all(path, DRE_CORPUS_AUTO, "docid", "head", "body");
    ASSERT_EQ(s.size(), 1u);
    ASSERT_EQ(s[0].status, DRE_OK) << s[0].error;
    EXPECT_EQ(s[0].d.id, "x");
    EXPECT_EQ(s[0].d.joined, "H B");
    // An empty title field name reads no title at all.
    s = read_all(path, DRE_CORPUS_AUTO, "docid", "", "body");
    ASSERT_EQ(s[0].status, DRE_OK) << s[0].error;
    EXPECT_FALSE(s[0].d.has_title);
    EXPECT_EQ(s[0].d.joined, "B");
}

TEST_F(CorpusTest, EveryBadJsonlLineIsReportedWithFileAndLine) {
    static const char kBad[] = "{\"_id\": \"ok1\", \"text\": \"fine\"}\n"            // 1
                               "{\"_id\": \"x\", \"text\": \"unterminated}\n"        // 2
                               "{\"text\": \"no id\"}\n"                             // 3
                               "{\"_id\": \"y\"}\n"                                  // 4
                               "{\"_id\": \"z\", \"text\": 7}\n"                     // 5
                               "{\"_id\": \"w\", \"title\": [1], \"text\": \"t\"}\n" // 6
                               "{\"_id\": \"v\", \"text\": \"   \"}\n"               // 7
                               "[1, 2]\n"                                            // 8
                               "\n"                                     // 9: blank, skipped
                               "{\"_id\": \"n\", \"text\": \"a\0b\"}\n" // 10
                               "{\"_id\": true, \"text\": \"b\"}\n"     // 11
                               "{\"_id\": \"\", \"text\": \"b\"}\n"     // 12
                               "{\"_id\": \"ok2\", \"text\": \"last, no newline\"}"; // 13
    std::string path = write("bad.jsonl", std::string(kBad, sizeof kBad - 1)); // keeps the NUL
    auto s = read_all(path);
    std::vector<std::string> want = {
        "",
        path + ":2: malformed JSON at column",
        path + ":3: missing \"_id\"",
        path + ":4: missing \"text\"",
        path + ":5: \"text\" is a number, expected a string",
        path + ":6: \"title\" is an array, expected a string",
        path + ":7: empty text",
        path + ":8: expected a JSON object, found an array",
        path + ":10: NUL byte at column",
        path + ":11: \"_id\" is a boolean, expected a string",
        path + ":12: empty \"_id\"",
        "",
    };
    ASSERT_EQ(s.size(), want.size());
    for (size_t i = 0; i < want.size(); i++) {
        if (want[i].empty()) {
            EXPECT_EQ(s[i].status, DRE_OK) << i << ": " << s[i].error;
        } else {
            EXPECT_EQ(s[i].status, DRE_ERR_FORMAT) << i;
            EXPECT_EQ(s[i].error.rfind(want[i], 0), 0u) << "got: " << s[i].error;
        }
    }
    EXPECT_EQ(s[0].d.id, "ok1");
    EXPECT_EQ(s.back().d.id, "ok2");
    EXPECT_EQ(s.back().d.text, "last, no newline");
    EXPECT_EQ(s.back().d.line, 13);
}

TEST_F(CorpusTest, TsvTwoAndThreeColumnsWithOptionalHeader) {
    std::string two = write("two.tsv", "id\ttext\nd1\tfirst text\nd2\tsecond\r\n");
    auto s = read_all(two);
    ASSERT_EQ(s.size(), 2u);
    ASSERT_EQ(s[0].status, DRE_OK) << s[0].error;
    EXPECT_EQ(s[0].d.id, "d1");
    EXPECT_EQ(s[0].d.joined, "first text");
    EXPECT_FALSE(s[0].d.has_title);
    EXPECT_EQ(s[0].d.line, 2);
    EXPECT_EQ(s[1].d.text, "second"); // CRLF stripped

    std::string three = write("three.tsv", "d1\tTitle One\tBody one\nd2\t\tBody two\n");
    s = read_all(three);
    ASSERT_EQ(s.size(), 2u);
    ASSERT_EQ(s[0].status, DRE_OK) << s[0].error;
    EXPECT_EQ(s[0].d.joined, "Title One Body one");
    EXPECT_EQ(s[1].d.joined, "Body two");
    EXPECT_TRUE(s[1].d.has_title);

    std::string header3 = write("h3.tsv", "_id\ttitle\ttext\nd9\tT\tX\n");
    s = read_all(header3);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].d.id, "d9");
}

TEST_F(CorpusTest, TsvBadLines) {
    std::string path = write("bad.tsv", "d1\tok\nonlyone\na\tb\tc\td\n\tempty id\nd5\t  \n");
    auto s = read_all(path);
    ASSERT_EQ(s.size(), 5u);
    EXPECT_EQ(s[0].status, DRE_OK);
    EXPECT_EQ(s[1].error,
              path + ":2: expected 2 or 3 tab-separated fields (id, [title,] text), found 1");
    EXPECT_EQ(s[2].error,
              path + ":3: expected 2 or 3 tab-separated fields (id, [title,] text), found 4");
    EXPECT_EQ(s[3].error, path + ":4: empty id");
    EXPECT_EQ(s[4].error, path + ":5: empty text");
}

TEST_F(CorpusTest, LinesFormatUsesLineNumbersAsIds) {
    std::string path = write("c.txt", "\xEF\xBB\xBF"
                                      "first line\nsecond line\n\nfourth");
    auto s = read_all(path);
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(s[0].d.id, "1");
    EXPECT_EQ(s[0].d.text, "first line"); // byte order mark dropped
    EXPECT_EQ(s[1].d.id, "2");
    EXPECT_EQ(s[2].status, DRE_ERR_FORMAT);
    EXPECT_EQ(s[2].error, path + ":3: empty text");
    EXPECT_EQ(s[3].d.id, "4");
    EXPECT_EQ(s[3].d.text, "fourth");
}

TEST_F(CorpusTest, FormatByExtensionOrExplicit) {
    EXPECT_EQ(dre_corpus_guess_format("a/b.jsonl"), DRE_CORPUS_JSONL);
    EXPECT_EQ(dre_corpus_guess_format("b.JSON"), DRE_CORPUS_JSONL);
    EXPECT_EQ(dre_corpus_guess_format("b.tsv"), DRE_CORPUS_TSV);
    EXPECT_EQ(dre_corpus_guess_format("b.txt"), DRE_CORPUS_LINES);
    EXPECT_EQ(dre_corpus_guess_format("dir.v2/noext"), DRE_CORPUS_LINES);
    // A .txt file read explicitly as TSV.
    std::string path = write("c.txt", "a\tb\n");
    auto s = read_all(path, DRE_CORPUS_TSV);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].d.id, "a");
}

TEST_F(CorpusTest, MissingFileAndDirectoryAreIoErrors) {
    dre_corpus *r = nullptr;
    std::string missing = dir + "/nope.jsonl";
    EXPECT_EQ(dre_corpus_open(missing.c_str(), DRE_CORPUS_AUTO, nullptr, nullptr, nullptr, &r),
              DRE_ERR_IO);
    EXPECT_EQ(std::string(dre_last_error()), missing + ": No such file or directory");
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(dre_corpus_open(dir.c_str(), DRE_CORPUS_AUTO, nullptr, nullptr, nullptr, &r),
              DRE_ERR_IO);
    EXPECT_NE(std::string(dre_last_error()).find("is a directory"), std::string::npos);
}

TEST_F(CorpusTest, OffsetsAllowResumingMidFile) {
    std::string path = write("c.jsonl", "{\"_id\":\"a\",\"text\":\"1\"}\n"
                                        "{\"_id\":\"b\",\"text\":\"2\"}\n"
                                        "{\"_id\":\"c\",\"text\":\"3\"}\n");
    dre_corpus *r = nullptr;
    ASSERT_EQ(dre_corpus_open(path.c_str(), DRE_CORPUS_AUTO, nullptr, nullptr, nullptr, &r),
              DRE_OK);
    EXPECT_EQ(dre_corpus_size(r), 3 * 23); // 22 bytes of JSON and a newline each
    dre_corpus_doc rec;
    int got = 0;
    ASSERT_EQ(dre_corpus_next(r, &rec, &got), DRE_OK);
    ASSERT_EQ(got, 1);
    int64_t offset = dre_corpus_offset(r), line = dre_corpus_line(r);
    EXPECT_EQ(offset, 23);
    EXPECT_EQ(line, 1);
    dre_corpus_close(r);

    ASSERT_EQ(dre_corpus_open(path.c_str(), DRE_CORPUS_AUTO, nullptr, nullptr, nullptr, &r),
              DRE_OK);
    ASSERT_EQ(dre_corpus_seek(r, offset, line), DRE_OK);
    ASSERT_EQ(dre_corpus_next(r, &rec, &got), DRE_OK);
    ASSERT_EQ(got, 1);
    EXPECT_STREQ(rec.id, "b");
    EXPECT_EQ(rec.line, 2);
    ASSERT_EQ(dre_corpus_next(r, &rec, &got), DRE_OK);
    EXPECT_STREQ(rec.id, "c");
    ASSERT_EQ(dre_corpus_next(r, &rec, &got), DRE_OK);
    EXPECT_EQ(got, 0);
    EXPECT_EQ(dre_corpus_offset(r), 3 * 23);
    EXPECT_EQ(dre_corpus_seek(r, 1000, 0), DRE_ERR_INVALID_ARG);
    dre_corpus_close(r);
}

} // namespace
