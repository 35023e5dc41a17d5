// tokenizer_test.cc — the WordPiece tokenizer against Hugging Face's BertTokenizerFast:
// ids of every fixture text (tools/fixtures/make_tokenizer_fixtures.py), truncation, every code
// point, other tokenizer_config.json settings, invalid UTF-8, threads and errors.
#include <cjson/cJSON.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dre.h"
#include "test_util.h"

namespace {

using namespace test_util;

const std::string kModelDir = DRE_SOURCE_DIR "/models/all-MiniLM-L6-v2";
const std::string kFixtures = DRE_SOURCE_DIR "/tests/fixtures/";

using Ids = std::vector<int32_t>;

struct Case {
    std::string kind, text;
    Ids ids;                                        // at the model's max length
    std::vector<std::pair<int32_t, Ids>> truncated; // (max length, ids)
};

struct Cases {
    int32_t max_length = 0;
    std::string reference;
    std::vector<Case> cases;
};

Ids json_ids(const cJSON *array) {
    Ids out;
    const cJSON *v;
    cJSON_ArrayForEach(v, array) out.push_back((int32_t)v->valuedouble);
    return out;
}

std::string from_hex(const std::string &hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back((char)std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

std::string case_text(const cJSON *row) {
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(row, "text");
    if (cJSON_IsString(text)) return text->valuestring;
    return from_hex(cJSON_GetObjectItemCaseSensitive(row, "hex")->valuestring);
}

const Cases &load_cases() {
    static Cases cases = [] {
        Cases c;
        std::ifstream f(kFixtures + "tokenizer_cases.jsonl");
        std::string line;
        while (std::getline(f, line)) {
            cJSON *row = cJSON_Parse(line.c_str());
            if (!row) continue;
            if (const cJSON *meta = cJSON_GetObjectItemCaseSensitive(row, "meta")) {
                c.max_length =
                    (int32_t)cJSON_GetObjectItemCaseSensitive(meta, "max_length")->valuedouble;
                c.reference = cJSON_GetObjectItemCaseSensitive(meta, "reference")->valuestring;
            } else {
                Case k;
                k.kind = cJSON_GetObjectItemCaseSensitive(row, "kind")->valuestring;
                k.text = case_text(row);
                k.ids = json_ids(cJSON_GetObjectItemCaseSensitive(row, "ids"));
                const cJSON *t;
                cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(row, "truncated"))
                    k.truncated.emplace_back(std::atoi(t->string), json_ids(t));
                c.cases.push_back(std::move(k));
            }
            cJSON_Delete(row);
        }
        return c;
    }();
    return cases;
}

std::string ids_str(const Ids &ids) {
    std::string s;
    for (int32_t id : ids)
        s += (s.empty() ? "" : " ") + std::to_string(id);
    return "[" + s + "]";
}

// The text with non-printable bytes escaped, cut to a readable length.
std::string printable(const std::string &text) {
    std::string s;
    char buf[8];
    for (unsigned char c : text.substr(0, 200)) {
        if (c < 0x20 || c == 0x7f) {
            snprintf(buf, sizeof buf, "\\x%02x", c);
            s += buf;
        } else {
            s += (char)c;
        }
    }
    return text.size() > 200 ? s + "..." : s;
}

size_t utf8_chars(const std::string &s) {
    size_t n = 0;
    for (unsigned char c : s)
        n += (c & 0xC0) != 0x80;
    return n;
}

class Tokenizer {
  public:
    explicit Tokenizer(const std::string &dir) {
        status_ = dre_tokenizer_open(dir.c_str(), &tok_);
        if (status_ != DRE_OK) error_ = dre_last_error();
    }
    ~Tokenizer() { dre_tokenizer_close(tok_); }
    Tokenizer(const Tokenizer &) = delete;
    Tokenizer &operator=(const Tokenizer &) = delete;
    dre_tokenizer *get() const { return tok_; }
    dre_status status() const { return status_; }
    const std::string &error() const { return error_; }

    // Tokenizes from a heap copy of exactly the text's bytes, so a read past the end
    // shows under ASan or valgrind.
    Ids ids(const std::string &text, int32_t max_length = 0) const {
        int32_t cap = max_length > 0 ? max_length : dre_tokenizer_max_length(tok_);
        std::unique_ptr<char[]> copy(new char[text.size() ? text.size() : 1]);
        memcpy(copy.get(), text.data(), text.size());
        Ids out((size_t)cap);
        int32_t n = -1;
        dre_status st = dre_tokenize(tok_, copy.get(), text.size(), max_length, out.data(), &n);
        EXPECT_EQ(st, DRE_OK) << dre_last_error();
        EXPECT_GE(n, 2);
        EXPECT_LE(n, cap);
        out.resize(n < 0 ? 0 : (size_t)n);
        return out;
    }

  private:
    dre_tokenizer *tok_ = nullptr;
    dre_status status_;
    std::string error_;
};

class TokenizerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(exists(kModelDir + "/vocab.txt"))
            << kModelDir << " is missing: run tools/setup.sh to install the default model";
        tok_ = std::make_unique<Tokenizer>(kModelDir);
        ASSERT_EQ(tok_->status(), DRE_OK) << tok_->error();
        ASSERT_FALSE(load_cases().cases.empty())
            << "tests/fixtures/tokenizer_cases.jsonl is missing or empty: run "
               "python3 tools/fixtures/make_tokenizer_fixtures.py";
    }
    std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TokenizerTest, VocabularyAndMaxLength) {
    dre_tokenizer *t = tok_->get();
    EXPECT_EQ(dre_tokenizer_vocab_size(t), 30522);
    EXPECT_EQ(dre_tokenizer_max_length(t), load_cases().max_length); // sentence-transformers'
    EXPECT_STREQ(dre_tokenizer_token(t, 0), "[PAD]");
    EXPECT_STREQ(dre_tokenizer_token(t, 100), "[UNK]");
    EXPECT_STREQ(dre_tokenizer_token(t, 101), "[CLS]");
    EXPECT_STREQ(dre_tokenizer_token(t, 102), "[SEP]");
    EXPECT_STREQ(dre_tokenizer_token(t, 30521), "##～");
    EXPECT_EQ(dre_tokenizer_token(t, -1), nullptr);
    EXPECT_EQ(dre_tokenizer_token(t, 30522), nullptr);
}

TEST_F(TokenizerTest, MatchesHuggingFaceOnEveryFixtureText) {
    const Cases &c = load_cases();
    size_t n_checked = 0, n_bad = 0;
    std::string report;
    for (const Case &k : c.cases) {
        Ids got = tok_->ids(k.text);
        n_checked++;
        if (got != k.ids && ++n_bad <= 10)
            report += "\n  [" + k.kind + "] \"" + printable(k.text) +
                      "\"\n    hf:  " + ids_str(k.ids) + "\n    dre: " + ids_str(got);
    }
    printf("tokenizer parity: %zu fixture texts at max length %d (reference: %s)\n", n_checked,
           c.max_length, c.reference.c_str());
    EXPECT_GT(n_checked, 800u);
    EXPECT_EQ(n_bad, 0u) << n_bad << " of " << n_checked << " texts differ; the first:" << report;
}

TEST_F(TokenizerTest, TruncatesLikeHuggingFace) {
    size_t n_checked = 0, n_bad = 0;
    std::string report;
    for (const Case &k : load_cases().cases) {
        for (const auto &[max_length, want] : k.truncated) {
            Ids got = tok_->ids(k.text, max_length);
            n_checked++;
            if (got != want && ++n_bad <= 10)
                report += "\n  max_length " + std::to_string(max_length) + " \"" +
                          printable(k.text) + "\"\n    hf:  " + ids_str(want) +
                          "\n    dre: " + ids_str(got);
        }
        // Truncation keeps the first max_length - 2 wordpieces of the untruncated run.
        if (k.ids.size() > 16) {
            Ids got = tok_->ids(k.text, 16);
            Ids want(k.ids.begin(), k.ids.begin() + 15);
            want.push_back(102);
            EXPECT_EQ(got, want) << printable(k.text);
        }
    }
    printf("tokenizer truncation: %zu cases at max lengths 16, 3, 2\n", n_checked);
    EXPECT_GT(n_checked, 1000u);
    EXPECT_EQ(n_bad, 0u) << n_bad << " of " << n_checked << " differ; the first:" << report;
}

std::string utf8(int32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += (char)cp;
    } else if (cp < 0x800) {
        s += (char)(0xC0 | (cp >> 6));
        s += (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += (char)(0xE0 | (cp >> 12));
        s += (char)(0x80 | ((cp >> 6) & 0x3F));
        s += (char)(0x80 | (cp & 0x3F));
    } else {
        s += (char)(0xF0 | (cp >> 18));
        s += (char)(0x80 | ((cp >> 12) & 0x3F));
        s += (char)(0x80 | ((cp >> 6) & 0x3F));
        s += (char)(0x80 | (cp & 0x3F));
    }
    return s;
}

TEST_F(TokenizerTest, EveryCodePointMatchesHuggingFace) {
    std::ifstream f(kFixtures + "tokenizer_codepoints.txt");
    ASSERT_TRUE(f) << "tests/fixtures/tokenizer_codepoints.txt is missing";
    std::string line;
    size_t n_checked = 0, n_bad = 0;
    std::string report;
    int32_t ids[64];
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream in(line);
        long first, count;
        in >> std::hex >> first >> count >> std::dec;
        Ids want;
        int32_t id;
        while (in >> id)
            want.push_back(id);
        for (int32_t cp = (int32_t)first; cp < first + count; cp++) {
            std::string text = "a" + utf8(cp) + "b";
            int32_t n;
            ASSERT_EQ(dre_tokenize(tok_->get(), text.data(), text.size(), 64, ids, &n), DRE_OK);
            Ids got(ids + 1, ids + n - 1);
            n_checked++;
            if (got != want && ++n_bad <= 10) {
                char buf[32];
                snprintf(buf, sizeof buf, "U+%04X", cp);
                report += std::string("\n  \"a\" ") + buf + " \"b\"  hf: " + ids_str(want) +
                          "  dre: " + ids_str(got);
            }
        }
    }
    printf("tokenizer code points: %zu\n", n_checked);
    EXPECT_EQ(n_checked, 0x110000u - 0x800u);
    EXPECT_EQ(n_bad, 0u) << n_bad << " code points differ; the first:" << report;
}

// A scratch model folder holding the real vocab.txt and a given tokenizer_config.json.
class ScratchModel {
  public:
    ScratchModel() {
        std::string tmpl = std::string(DRE_BINARY_DIR) + "/tokenizer_test_XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        dir_ = mkdtemp(buf.data()) ? std::string(buf.data()) : std::string();
    }
    ~ScratchModel() {
        for (const char *name : {"vocab.txt", "tokenizer_config.json", "config.json"})
            unlink((dir_ + "/" + name).c_str());
        rmdir(dir_.c_str());
    }
    void write(const std::string &name, const std::string &content) const {
        std::ofstream(dir_ + "/" + name, std::ios::binary) << content;
    }
    const std::string &dir() const { return dir_; }

  private:
    std::string dir_;
};

TEST_F(TokenizerTest, OtherConfigSettingsMatchHuggingFace) {
    std::vector<std::string> texts;
    for (const Case &k : load_cases().cases)
        if (k.kind == "hard" && utf8_chars(k.text) <= 300) texts.push_back(k.text);
    std::ifstream f(kFixtures + "tokenizer_options.jsonl");
    ASSERT_TRUE(f) << "tests/fixtures/tokenizer_options.jsonl is missing";
    std::string vocab = read_text(kModelDir + "/vocab.txt");
    std::string line;
    size_t n_settings = 0, n_checked = 0;
    while (std::getline(f, line)) {
        cJSON *row = cJSON_Parse(line.c_str());
        ASSERT_NE(row, nullptr);
        if (const cJSON *meta = cJSON_GetObjectItemCaseSensitive(row, "meta")) {
            ASSERT_EQ((size_t)cJSON_GetObjectItemCaseSensitive(meta, "n_texts")->valuedouble,
                      texts.size());
            cJSON_Delete(row);
            continue;
        }
        char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(row, "config"));
        ScratchModel m;
        m.write("vocab.txt", vocab);
        m.write("tokenizer_config.json", config);
        Tokenizer tok(m.dir());
        ASSERT_EQ(tok.status(), DRE_OK) << tok.error();
        EXPECT_EQ(dre_tokenizer_max_length(tok.get()), 512); // no model_max_length, no config.json
        size_t i = 0, n_bad = 0;
        std::string report;
        const cJSON *ids;
        cJSON_ArrayForEach(ids, cJSON_GetObjectItemCaseSensitive(row, "ids")) {
            ASSERT_LT(i, texts.size());
            Ids want = json_ids(ids), got = tok.ids(texts[i]);
            if (got != want && ++n_bad <= 10)
                report += "\n  \"" + printable(texts[i]) + "\"\n    hf:  " + ids_str(want) +
                          "\n    dre: " + ids_str(got);
            i++;
            n_checked++;
        }
        EXPECT_EQ(i, texts.size());
        EXPECT_EQ(n_bad, 0u) << "tokenizer_config.json " << config << ": " << n_bad
                             << " texts differ; the first:" << report;
        free(config);
        cJSON_Delete(row);
        n_settings++;
    }
    printf("tokenizer settings: %zu texts over %zu tokenizer_config.json settings\n", n_checked,
           n_settings);
    EXPECT_EQ(n_settings, 3u);
}

// Invalid UTF-8: every byte that does not start a valid sequence is dropped, as Hugging
// Face drops the U+FFFD that decoding with errors="replace" puts there.
TEST_F(TokenizerTest, InvalidUtf8BytesAreDropped) {
    const struct {
        const char *bytes, *valid;
    } cases[] = {
        {"ab\xff"
         "cd",
         "abcd"},
        {"\xff\xfe\xfd", ""},
        {"caf\xc3", "caf"},   // truncated 2-byte sequence at the end
        {"\xe2\x82", ""},     // truncated 3-byte sequence at the end
        {"x\xe2\x82y", "xy"}, // truncated in the middle
        {"\xf0\x9f\x98", ""}, // truncated emoji at the end
        {"\xf0\x9f\x98 smile", " smile"},
        {"\xc0\xaf", ""},         // overlong '/'
        {"\xe0\x80\xaf", ""},     // overlong, 3 bytes
        {"\xf0\x80\x80\xaf", ""}, // overlong, 4 bytes
        {"\xc1\xbf", ""},
        {"\xed\xa0\x80", ""}, // a UTF-16 surrogate
        {"a\xed\xbf\xbf"
         "b",
         "ab"},
        {"\xf4\x90\x80\x80", ""}, // above U+10FFFF
        {"\xf5\x80\x80\x80", ""},
        {"\xf8\x88\x80\x80\x80", ""}, // old 5-byte form
        {"\x80\x81 hello", " hello"}, // stray continuation bytes
        {"hello\x80", "hello"},
        {"Stra\xdf"
         "e",
         "Strae"}, // Latin-1, not UTF-8
        {"na\xefve caf\xe9", "nave caf"},
        {"\xe4\xb8\xad\xe6\x96", "\xe4\xb8\xad"}, // a CJK char, then half of one
        {"\xc3\xa9\xcc", "\xc3\xa9"},
    };
    for (const auto &c : cases) {
        Ids got = tok_->ids(c.bytes), want = tok_->ids(c.valid);
        EXPECT_EQ(got, want) << "bytes \"" << printable(c.bytes) << "\"";
    }
    // [SEP\xff] is not the special token: HF sees "[SEP\ufffd]" and removes U+FFFD only
    // after matching special tokens, so its ids are "[", "sep", "]" (BertTokenizerFast's).
    EXPECT_EQ(tok_->ids("[SEP\xff]"), (Ids{101, 1031, 19802, 1033, 102}));

    // Every lead byte, cut at every length, and random bytes: no crash, no read past the
    // end (run under ASan or valgrind), well-formed output.
    std::vector<std::string> texts;
    for (int b = 0x80; b <= 0xff; b++)
        for (int n = 1; n <= 4; n++)
            texts.push_back(std::string(1, (char)b) + std::string(n - 1, '\x80'));
    std::mt19937 rng(7);
    for (int i = 0; i < 3000; i++) {
        std::string s(rng() % 64, '\0');
        for (char &ch : s)
            ch = (char)(rng() % 256);
        texts.push_back(s);
    }
    int32_t vocab = dre_tokenizer_vocab_size(tok_->get());
    for (const std::string &s : texts) {
        Ids got = tok_->ids(s, 32);
        ASSERT_GE(got.size(), 2u);
        EXPECT_EQ(got.front(), 101);
        EXPECT_EQ(got.back(), 102);
        for (int32_t id : got)
            EXPECT_TRUE(id >= 0 && id < vocab);
    }
}

TEST_F(TokenizerTest, ThreadsGiveTheSameIdsAsOneThread) {
    std::vector<std::string> texts;
    for (const Case &k : load_cases().cases)
        texts.push_back(k.text);
    std::vector<Ids> serial;
    for (const std::string &t : texts)
        serial.push_back(tok_->ids(t));
    const int n_threads = 4;
    std::vector<std::vector<Ids>> results(n_threads);
    std::vector<int> ok(n_threads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; t++) {
        threads.emplace_back([&, t] {
            std::vector<int32_t> buf(512);
            for (int round = 0; round < 3; round++) {
                results[t].clear();
                // each thread walks the texts from a different start
                for (size_t i = 0; i < texts.size(); i++) {
                    const std::string &s = texts[(i + t * 97) % texts.size()];
                    int32_t n;
                    if (dre_tokenize(tok_->get(), s.data(), s.size(), 0, buf.data(), &n) != DRE_OK)
                        return;
                    results[t].emplace_back(buf.begin(), buf.begin() + n);
                }
            }
            ok[t] = 1;
        });
    }
    for (auto &th : threads)
        th.join();
    for (int t = 0; t < n_threads; t++) {
        ASSERT_TRUE(ok[t]) << "thread " << t << " failed";
        for (size_t i = 0; i < texts.size(); i++)
            ASSERT_EQ(results[t][i], serial[(i + t * 97) % texts.size()]) << "thread " << t;
    }
}

TEST_F(TokenizerTest, ArgumentErrors) {
    int32_t ids[8], n;
    EXPECT_EQ(dre_tokenize(tok_->get(), "abc", 3, 1, ids, &n), DRE_ERR_INVALID_ARG);
    EXPECT_NE(std::string(dre_last_error()).find("max_length"), std::string::npos);
    EXPECT_EQ(dre_tokenize(nullptr, "abc", 3, 8, ids, &n), DRE_ERR_INVALID_ARG);
    EXPECT_EQ(dre_tokenize(tok_->get(), nullptr, 3, 8, ids, &n), DRE_ERR_INVALID_ARG);
    ASSERT_EQ(dre_tokenize(tok_->get(), nullptr, 0, 8, ids, &n), DRE_OK); // empty text
    EXPECT_EQ(n, 2);
    EXPECT_EQ(ids[0], 101);
    EXPECT_EQ(ids[1], 102);
    // Text past len is not read: "abc" of "abcdef".
    ASSERT_EQ(dre_tokenize(tok_->get(), "abcdef", 3, 8, ids, &n), DRE_OK);
    EXPECT_EQ(Ids(ids, ids + n), tok_->ids("abc"));
}

TEST(TokenizerOpen, MissingVocabularyIsAnIoErrorNamingTheFile) {
    ScratchModel m;
    m.write("tokenizer_config.json", "{}");
    dre_tokenizer *tok = nullptr;
    EXPECT_EQ(dre_tokenizer_open(m.dir().c_str(), &tok), DRE_ERR_IO);
    EXPECT_EQ(tok, nullptr);
    EXPECT_NE(std::string(dre_last_error()).find(m.dir() + "/vocab.txt"), std::string::npos)
        << dre_last_error();
    EXPECT_EQ(dre_tokenizer_open(nullptr, &tok), DRE_ERR_INVALID_ARG);
}

TEST(TokenizerOpen, MalformedFilesAreFormatErrors) {
    ScratchModel m;
    m.write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
    m.write("tokenizer_config.json", "{\"do_lower_case\": tru");
    dre_tokenizer *tok = nullptr;
    EXPECT_EQ(dre_tokenizer_open(m.dir().c_str(), &tok), DRE_ERR_FORMAT);
    EXPECT_NE(std::string(dre_last_error()).find("tokenizer_config.json"), std::string::npos)
        << dre_last_error();

    m.write("tokenizer_config.json", "{}");
    m.write("vocab.txt", "[PAD]\n[UNK]\n[SEP]\nhello\n"); // no [CLS]
    EXPECT_EQ(dre_tokenizer_open(m.dir().c_str(), &tok), DRE_ERR_FORMAT);
    EXPECT_NE(std::string(dre_last_error()).find("[CLS]"), std::string::npos) << dre_last_error();
}

TEST(TokenizerOpen, SmallVocabularyAndMaxLengthFromConfig) {
    // A hand-made vocabulary: CRLF lines, a repeated entry (the last id wins, as in
    // Hugging Face's vocabulary dict), custom special tokens from tokenizer_config.json.
    // The ids are BertTokenizerFast's on the same folder (transformers 5.23, tokenizers
    // 0.23.3); the max length is sentence-transformers' min(model_max_length,
    // max_position_embeddings).
    ScratchModel m;
    m.write("vocab.txt", "<pad>\r\n<unk>\r\n<s>\r\n</s>\r\nhello\r\n##lo\r\nhel\r\nhello\r\n");
    m.write("tokenizer_config.json",
            "{\"unk_token\": \"<unk>\", \"cls_token\": \"<s>\", \"sep_token\": \"</s>\","
            " \"pad_token\": \"<pad>\", \"model_max_length\": 1000000000000000019884624838656}");
    m.write("config.json", "{\"max_position_embeddings\": 64}");
    Tokenizer tok(m.dir());
    ASSERT_EQ(tok.status(), DRE_OK) << tok.error();
    EXPECT_EQ(dre_tokenizer_vocab_size(tok.get()), 8);
    EXPECT_EQ(dre_tokenizer_max_length(tok.get()), 64);
    EXPECT_STREQ(dre_tokenizer_token(tok.get(), 3), "</s>");
    EXPECT_EQ(tok.ids("Hello HELLO hello! xyz"), (Ids{2, 7, 7, 7, 1, 1, 3}));
    EXPECT_EQ(tok.ids("hello</s>hello"), (Ids{2, 7, 3, 7, 3}));
}

} // namespace
