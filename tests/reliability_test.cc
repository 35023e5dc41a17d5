// reliability_test.cc — bad input through the dre CLI, as a user meets it: each case checks
// the exact exit status, that the message names the file (and line), and that nothing is
// lost: invalid UTF-8, NUL bytes, a 50 MB document, a file cut mid-line, --on-error skip
// with --errors (also across a resume), broken model folders, damaged index files, a
// meta.json that disagrees with the model, a full disk (RLIMIT_FSIZE) during embed and
// --append, bad query and qrels files, -k bounds, and kill -9 during --append. The small
// test model (tests/fixtures/tiny-bert-cls) and texts of a few words keep it quick.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dre.h"
#include "test_util.h"

namespace {

using namespace test_util;

namespace fs = std::filesystem;

const std::string kSource = DRE_SOURCE_DIR;
const std::string kDre = std::string(DRE_BINARY_DIR) + "/dre";
const std::string kTiny = kSource + "/tests/fixtures/tiny-bert-cls";
const std::string kMiniLM = kSource + "/models/all-MiniLM-L6-v2";
const std::set<std::string> kIndexFiles = {"docs.sqlite", "index.faiss", "meta.json"};
const char *const kCheckpoint = "embed-checkpoint.json";

std::string g_root; // scratch folder of the whole suite

// One JSONL document; text and title are copied as they are (raw bytes, no escaping).
std::string doc_line(const std::string &id, const std::string &text, const char *title = nullptr) {
    std::string line = "{\"_id\": \"" + id + "\", ";
    if (title) line += "\"title\": \"" + std::string(title) + "\", ";
    return line + "\"text\": \"" + text + "\"}\n";
}

// Documents d<first> .. d<first+n-1> of a few words each: many checkpoints in little time.
std::string short_corpus(int first, int n) {
    std::string s;
    for (int i = first; i < first + n; i++)
        s += doc_line("d" + std::to_string(i), "w" + std::to_string(i) + " w" +
                                                   std::to_string(i % 7) + " w" +
                                                   std::to_string(i % 13));
    return s;
}

struct outcome {
    int exit_code = -1; // -1 when the process did not exit by itself
    int signal = 0;     // the signal that ended it, if one did
    std::string out, err;
    long max_rss_kb = 0;
};

std::ostream &operator<<(std::ostream &os, const outcome &r) {
    return os << "exit " << r.exit_code << ", signal " << r.signal << ", stderr: " << r.err;
}

// Runs build/dre with args from the repository root, stdin from input. A file_size_limit
// (bytes) is set with RLIMIT_FSIZE in the child, SIGXFSZ ignored, so that a write past it
// fails with EFBIG as a write to a full disk fails with ENOSPC.
//
// With measure_rss, dre runs under GNU time, which reports dre's own peak RSS. The rusage
// of a child forked from this process would not do: Linux carries the forked copy's RSS
// (this test's, holding a 50 MB text and an opened index) into the child's ru_maxrss at exec.
outcome run_dre(const std::vector<std::string> &args, rlim_t file_size_limit = 0,
                const std::string &input = "", bool measure_rss = false) {
    outcome r;
    std::string in = g_root + "/stdin", out = g_root + "/stdout", err = g_root + "/stderr";
    std::string rss = g_root + "/rss";
    write_text(in, input);
    std::vector<std::string> full;
    if (measure_rss) full = {"/usr/bin/time", "-f", "%M", "-o", rss};
    full.push_back(kDre);
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (auto &a : full)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    int fd_in = open(in.c_str(), O_RDONLY);
    int fd_out = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fd_err = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd_in, 0);
        dup2(fd_out, 1);
        dup2(fd_err, 2);
        if (chdir(kSource.c_str()) != 0) _exit(126);
        if (file_size_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit lim = {file_size_limit, file_size_limit};
            if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(125);
        }
        execv(argv[0], argv.data());
        _exit(127);
    }
    close(fd_in);
    close(fd_out);
    close(fd_err);
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid) {
        if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    }
    r.out = read_text(out);
    r.err = read_text(err);
    if (measure_rss) {
        r.max_rss_kb = std::atol(read_text(rss).c_str());
        EXPECT_GT(r.max_rss_kb, 0) << "GNU time (apt package time) reported no peak RSS";
    }
    // Under -DDRE_SANITIZE=ON a memory error also exits 1: it must not pass for a clean one.
    EXPECT_FALSE(has(r.err, "Sanitizer") || has(r.err, "runtime error:")) << r.err;
    return r;
}

// `dre embed -q` with the small model on the CPU, then any more options.
std::vector<std::string> embed_args(std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"embed", "--model", kTiny, "--device", "cpu"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

struct index_dump {
    bool opened = false;
    int64_t count = 0;
    int dim = 0;
    std::vector<float> vectors;
    std::vector<std::string> ids, titles, texts;
    std::vector<std::string> bm25; // every token of the BM25 index (test_util.h)
};

// Everything an index folder holds, through the public API.
index_dump dump(const std::string &dir) {
    index_dump d;
    dre_index *ix = nullptr;
    if (dre_index_open(dir.c_str(), &ix) != DRE_OK) return d;
    d.opened = true;
    const dre_index_info *info = dre_index_get_info(ix);
    d.count = info->count;
    d.dim = info->dim;
    d.vectors.resize((size_t)d.count * info->dim);
    EXPECT_EQ(dre_index_vectors(ix, 0, d.count, d.vectors.data()), DRE_OK) << dre_last_error();
    for (int64_t row = 0; row < d.count; row++) {
        dre_doc doc;
        EXPECT_EQ(dre_index_doc(ix, row, &doc), DRE_OK) << dre_last_error();
        d.ids.push_back(doc.id ? doc.id : "");
        d.titles.push_back(doc.title ? doc.title : "");
        d.texts.push_back(doc.text ? doc.text : "");
        dre_doc_clear(&doc);
    }
    dre_index_close(ix);
    d.bm25 = bm25_dump(dir);
    return d;
}

// Both folders hold the same documents and bit-identical vectors.
void expect_same_index(const std::string &got_dir, const std::string &want_dir) {
    index_dump got = dump(got_dir), want = dump(want_dir);
    ASSERT_TRUE(got.opened) << got_dir;
    ASSERT_TRUE(want.opened) << want_dir;
    EXPECT_EQ(got.count, want.count);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.titles, want.titles);
    EXPECT_EQ(got.texts, want.texts);
    EXPECT_TRUE(got.bm25 == want.bm25) << got_dir << " and " << want_dir << " hold different BM25";
    if (!want.bm25.empty()) EXPECT_EQ(want.bm25[0], "integrity ok") << want_dir;
    ASSERT_EQ(got.vectors.size(), want.vectors.size());
    EXPECT_EQ(memcmp(got.vectors.data(), want.vectors.data(), got.vectors.size() * sizeof(float)),
              0)
        << got_dir << " and " << want_dir << " hold different vectors";
}

double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++)
        m = std::fmax(m, std::fabs((double)a[i] - b[i]));
    return m;
}

// Rewrites a JSON file with edit applied.
void edit_json(const std::string &path, void (*edit)(cJSON *)) {
    cJSON *root = cJSON_Parse(read_text(path).c_str());
    ASSERT_NE(root, nullptr) << path;
    edit(root);
    char *text = cJSON_Print(root);
    write_text(path, text);
    free(text);
    cJSON_Delete(root);
}

class ReliabilityTest : public ::testing::Test {
  protected:
    static std::string small_index; // 300 short documents, Flat
    static std::string hnsw_index;  // the same, HNSW32
    static outcome small_built, hnsw_built;
    std::string dir;

    static void SetUpTestSuite() {
        char tmpl[] = "/tmp/dre_reliability_test_XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        g_root = tmpl;
        if (access(kDre.c_str(), X_OK) != 0) return; // SetUp reports it
        std::string corpus = g_root + "/small.jsonl";
        write_text(corpus, short_corpus(0, 300));
        small_index = g_root + "/small";
        hnsw_index = g_root + "/hnsw";
        small_built = run_dre(embed_args({"-q", corpus, small_index}));
        hnsw_built = run_dre(embed_args({"-q", "--factory", "HNSW32", corpus, hnsw_index}));
    }
    static void TearDownTestSuite() { fs::remove_all(g_root); }

    void SetUp() override {
        ASSERT_EQ(access(kDre.c_str(), X_OK), 0) << kDre << " is missing: build the dre_cli target";
        ASSERT_TRUE(exists(kTiny + "/model.safetensors")) << kTiny << " is missing";
        ASSERT_EQ(small_built.exit_code, 0) << small_built;
        ASSERT_EQ(hnsw_built.exit_code, 0) << hnsw_built;
        static int n = 0;
        dir = g_root + "/t" + std::to_string(n++);
        ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    }

    // A writable copy of an index or model folder.
    std::string copy_of(const std::string &src, const std::string &name) {
        std::string dst = dir + "/" + name;
        fs::copy(src, dst, fs::copy_options::recursive);
        return dst;
    }
};

std::string ReliabilityTest::small_index, ReliabilityTest::hnsw_index;
outcome ReliabilityTest::small_built, ReliabilityTest::hnsw_built;

// ---------------------------------------------------------------- corpus

// Invalid UTF-8 is not an error: the docstore keeps the bytes as they were, and the
// tokenizer drops each byte that does not start a valid sequence, so the document embeds
// exactly as its text without those bytes does. The same holds for a query.
TEST_F(ReliabilityTest, InvalidUtf8IsEmbeddedWithTheBadBytesDropped) {
    // A lone continuation byte, 0xFE/0xFF, a cut 3-byte sequence, an overlong '/', an
    // encoded surrogate, a code point past U+10FFFF, a lead byte at the very end.
    const std::string bad = "caf\xff\xfe bar \xe2\x82 baz \xc0\xaf qux \xed\xa0\x80 quux "
                            "\xf4\x90\x80\x80 end \x80zz\xc3";
    std::string clean;
    for (char c : bad)
        if ((unsigned char)c < 0x80) clean += c; // every non-ASCII byte above is invalid
    std::string corpus = dir + "/utf8.jsonl", ix = dir + "/ix";
    write_text(corpus, doc_line("bad", bad, "T\xff") + doc_line("clean", clean, "T") +
                           doc_line("other", "an unrelated sentence about rivers"));
    outcome r = run_dre(embed_args({corpus, ix}));
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(has(r.err, "embedded 3 docs")) << r.err;

    index_dump d = dump(ix);
    ASSERT_TRUE(d.opened) << dre_last_error();
    ASSERT_EQ(d.ids, (std::vector<std::string>{"bad", "clean", "other"}));
    EXPECT_EQ(d.texts[0], bad); // stored byte for byte
    EXPECT_EQ(d.titles[0], "T\xff");
    const float *v = d.vectors.data();
    EXPECT_LE(max_abs_diff(v, v + d.dim, d.dim), 1e-6) << "the bad bytes changed the embedding";
    EXPECT_GT(max_abs_diff(v, v + 2 * d.dim, d.dim), 1e-3);

    // dense: the tokenizer's doing (BM25 takes the bytes as FTS5's tokenizer reads them, in
    // documents and queries alike)
    outcome with_bad = run_dre(
        {"search", "--mode", "dense", "--model", kTiny, "--device", "cpu", ix, "T \xff" + bad});
    outcome without = run_dre(
        {"search", "--mode", "dense", "--model", kTiny, "--device", "cpu", ix, "T " + clean});
    ASSERT_EQ(with_bad.exit_code, 0) << with_bad;
    ASSERT_EQ(without.exit_code, 0) << without;
    EXPECT_EQ(lines_of(with_bad.out).size(), 3u);
    EXPECT_EQ(with_bad.out, without.out);
}

// A raw NUL byte in a line is a bad line ("file:line: NUL byte at column c") in every
// format; with --on-error skip it is listed and the rest is embedded.
TEST_F(ReliabilityTest, NulByteIsABadLineWithFileAndLine) {
    std::string nul_line = "{\"_id\": \"n\", \"text\": \"before";
    nul_line += '\0';
    nul_line += "after\"}\n";
    std::string column = std::to_string(nul_line.find('\0') + 1);
    std::string corpus = dir + "/nul.jsonl", ix = dir + "/fail";
    write_text(corpus, doc_line("a", "first") + nul_line + doc_line("c", "third"));
    outcome r = run_dre(embed_args({"-q", corpus, ix}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, corpus + ":2: NUL byte at column " + column)) << r.err;
    EXPECT_TRUE(files_in(ix).empty()); // nothing was checkpointed: nothing left behind

    std::string errors = dir + "/errors.txt";
    ix = dir + "/skip";
    r = run_dre(embed_args({"--on-error", "skip", "--errors", errors, corpus, ix}));
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(read_text(errors), corpus + ":2: NUL byte at column " + column + "\n");
    EXPECT_TRUE(has(r.err, "embedded 2 docs")) << r.err;
    EXPECT_TRUE(has(r.err, "skipped 1 bad lines")) << r.err;
    EXPECT_EQ(dump(ix).ids, (std::vector<std::string>{"a", "c"}));

    std::string lines = dir + "/nul.txt", tsv = dir + "/nul.tsv";
    write_text(lines, std::string("one\ntw\0o\nthree\n", 15));
    r = run_dre(embed_args({"-q", lines, dir + "/lines"}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, lines + ":2: NUL byte at column 3")) << r.err;
    write_text(tsv, std::string("1\tone\n2\ttw\0o\n", 13));
    r = run_dre(embed_args({"-q", tsv, dir + "/tsv"}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, tsv + ":2: NUL byte at column 5")) << r.err;
}

// One 50 MB JSONL line embeds in bounded memory: the tokenizer stops at the model's max
// length, so the vector equals that of the document's first few thousand bytes; the
// docstore keeps the whole text.
TEST_F(ReliabilityTest, FiftyMegabyteDocumentIsTruncatedInBoundedMemory) {
    const size_t kBytes = 50u * 1000 * 1000;
    std::string text;
    text.reserve(kBytes + 32);
    while (text.size() < kBytes)
        text += "lorem ipsum dolor sit amet ";
    text.resize(kBytes);
    std::string corpus = dir + "/huge.jsonl", ix = dir + "/ix";
    {
        std::ofstream f(corpus, std::ios::binary);
        f << doc_line("huge", text, "Big") << doc_line("head", text.substr(0, 4000), "Big")
          << doc_line("small", "a small document");
    }
    auto start = std::chrono::steady_clock::now();
    outcome r = run_dre(embed_args({corpus, ix}), 0, "", true);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(has(r.err, "embedded 3 docs")) << r.err;
    EXPECT_LT(r.max_rss_kb, 1024L * 1024) << "peak RSS of dre embed: " << r.max_rss_kb << " kB";
    printf("[          ] 50 MB document: dre embed %.2f s, peak RSS %ld MB\n", seconds,
           r.max_rss_kb / 1024);

    index_dump d = dump(ix);
    ASSERT_TRUE(d.opened) << dre_last_error();
    ASSERT_EQ(d.ids, (std::vector<std::string>{"huge", "head", "small"}));
    EXPECT_EQ(d.texts[0].size(), kBytes);
    EXPECT_TRUE(d.texts[0] == text) << "the stored text differs";
    EXPECT_LE(max_abs_diff(d.vectors.data(), d.vectors.data() + d.dim, d.dim), 1e-6);

    r = run_dre({"search", "--model", kTiny, "--device", "cpu", ix, "lorem ipsum"}, 0, "", true);
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(lines_of(r.out).size(), 3u) << r.out;
    EXPECT_LT(r.max_rss_kb, 1024L * 1024) << "peak RSS of dre search: " << r.max_rss_kb << " kB";
    printf("[          ] 50 MB document: dre search peak RSS %ld MB\n", r.max_rss_kb / 1024);
}

// The last line needs no newline; a JSON object cut off on the last line is a bad line
// with its line number.
TEST_F(ReliabilityTest, FileEndingMidLine) {
    std::string whole = dir + "/whole.jsonl", cut = dir + "/cut.jsonl";
    write_text(whole, doc_line("a", "first") + doc_line("b", "second") +
                          "{\"_id\": \"c\", \"text\": \"last line, no newline\"}");
    outcome r = run_dre(embed_args({"-q", whole, dir + "/whole"}));
    ASSERT_EQ(r.exit_code, 0) << r;
    index_dump d = dump(dir + "/whole");
    EXPECT_EQ(d.ids, (std::vector<std::string>{"a", "b", "c"}));
    ASSERT_EQ(d.texts.size(), 3u);
    EXPECT_EQ(d.texts[2], "last line, no newline");

    write_text(cut, doc_line("a", "first") + doc_line("b", "second") +
                        "{\"_id\": \"c\", \"text\": \"cut off mid-");
    r = run_dre(embed_args({"-q", cut, dir + "/fail"}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "dre embed: malformed input: " + cut + ":3: malformed JSON at column"))
        << r.err;
    EXPECT_TRUE(files_in(dir + "/fail").empty());

    std::string errors = dir + "/errors.txt";
    r = run_dre(embed_args({"--on-error", "skip", "--errors", errors, cut, dir + "/skip"}));
    ASSERT_EQ(r.exit_code, 0) << r;
    auto listed = lines_of(read_text(errors));
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].rfind(cut + ":3: malformed JSON at column", 0), 0u) << listed[0];
    EXPECT_TRUE(has(r.err, "embedded 2 docs")) << r.err;
    EXPECT_TRUE(has(r.err, "skipped 1 bad lines")) << r.err;
    EXPECT_EQ(dump(dir + "/skip").ids, (std::vector<std::string>{"a", "b"}));
}

// --on-error skip --errors FILE lists every bad line once, with its file, line and what
// was wrong, and the summary counts them; also when the run stopped on a full disk and
// was resumed (the lines after the checkpoint are read twice, listed once).
TEST_F(ReliabilityTest, OnErrorSkipListsExactlyTheBadLines) {
    const char *const kinds[][2] = {
        {"{\"_id\": \"bN\", \"text\": broken}", "malformed JSON at column"},
        {"{\"_id\": \"bN\"}", "missing \"text\""},
        {"{\"_id\": \"bN\", \"text\": 7}", "\"text\" is a number, expected a string"},
        {"{\"_id\": \"bN\", \"text\": \"   \"}", "empty text"},
        {"{\"_id\": \"bN\", \"text\": \"a NUL", "NUL byte at column"},
        {"{\"_id\": \"d1\", \"text\": \"again\"}", "duplicate id \"d1\" (already at row 0)"},
        {"{\"_id\": \"bN\", \"text\": \"\\ud800 lone surrogate\"}", "malformed JSON at column"},
        {"[1, 2]", "expected a JSON object, found an array"},
    };
    std::string corpus = dir + "/mixed.jsonl";
    std::string text;
    std::map<int, std::string> bad; // line -> what the message must say
    std::vector<std::string> good;
    for (int line = 1; line <= 1200; line++) {
        if (line % 97 == 0) { // blank lines are skipped silently
            text += "\n";
        } else if (line % 10 == 0) {
            int k = (line / 10) % 8;
            std::string l = kinds[k][0];
            if (k == 4) l += std::string(1, '\0') + "\"}";
            text += l + "\n";
            bad[line] = corpus + ":" + std::to_string(line) + ": " + kinds[k][1];
        } else {
            text += doc_line("d" + std::to_string(line),
                             "w" + std::to_string(line) + " w" + std::to_string(line % 11));
            good.push_back("d" + std::to_string(line));
        }
    }
    write_text(corpus, text);

    auto check_listed = [&](const std::string &errors_path) {
        auto listed = lines_of(read_text(errors_path));
        EXPECT_EQ(listed.size(), bad.size());
        std::set<int> seen;
        for (const std::string &l : listed) {
            ASSERT_EQ(l.rfind(corpus + ":", 0), 0u) << l;
            int line = std::stoi(l.substr(corpus.size() + 1));
            EXPECT_TRUE(seen.insert(line).second) << "listed twice: " << l;
            ASSERT_EQ(bad.count(line), 1u) << "not a bad line: " << l;
            EXPECT_EQ(l.rfind(bad[line], 0), 0u) << l << "\nwant: " << bad[line];
        }
        EXPECT_EQ(seen.size(), bad.size());
    };

    std::string errors = dir + "/errors.txt", ix = dir + "/ix";
    outcome r = run_dre(embed_args(
        {"--on-error", "skip", "--errors", errors, "--checkpoint-every", "16", corpus, ix}));
    ASSERT_EQ(r.exit_code, 0) << r;
    check_listed(errors);
    EXPECT_TRUE(has(r.err, "embedded " + std::to_string(good.size()) + " docs")) << r.err;
    EXPECT_TRUE(has(r.err, "skipped " + std::to_string(bad.size()) + " bad lines")) << r.err;
    index_dump d = dump(ix);
    EXPECT_EQ(d.ids, good);

    // Stopped midway by a file size limit, then resumed.
    std::string errors2 = dir + "/errors2.txt", ix2 = dir + "/ix2";
    std::vector<std::string> args = embed_args(
        {"-q", "--on-error", "skip", "--errors", errors2, "--checkpoint-every", "16", corpus, ix2});
    r = run_dre(args, d.vectors.size() * sizeof(float) / 2);
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, ix2 + "/") && has(r.err, "File too large")) << r.err;
    ASSERT_TRUE(exists(ix2 + "/" + kCheckpoint));
    args.insert(args.begin() + 1, "--resume");
    r = run_dre(args);
    ASSERT_EQ(r.exit_code, 0) << r;
    check_listed(errors2);
    expect_same_index(ix2, ix);
}

// ---------------------------------------------------------------- model

TEST_F(ReliabilityTest, BrokenModelFolderNamesTheFile) {
    std::string corpus = dir + "/c.jsonl";
    write_text(corpus, short_corpus(0, 5));
    std::string vocab = read_text(kTiny + "/vocab.txt");
    auto embed_with = [&](const std::string &model, const std::string &ix) {
        outcome r = run_dre({"embed", "-q", "--model", model, "--device", "cpu", corpus, ix});
        EXPECT_TRUE(files_in(ix).empty()) << ix; // nothing written
        return r;
    };

    std::string m = copy_of(kTiny, "no-unk");
    std::string without_unk = vocab;
    size_t at = without_unk.find("[UNK]\n");
    ASSERT_NE(at, std::string::npos);
    without_unk.erase(at, 6);
    write_text(m + "/vocab.txt", without_unk);
    outcome r = embed_with(m, dir + "/a");
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, m + "/vocab.txt: no entry for the special token [UNK]")) << r.err;
    r = run_dre({"search", "--model", m, "--device", "cpu", small_index, "w1"});
    EXPECT_EQ(r.exit_code, 1) << r; // same weights, so it gets as far as the tokenizer
    EXPECT_TRUE(has(r.err, m + "/vocab.txt")) << r.err;
    EXPECT_EQ(r.out, "");

    write_text(m + "/vocab.txt", "");
    r = embed_with(m, dir + "/b");
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, m + "/vocab.txt: no tokens")) << r.err;

    // More entries than the model has embeddings: refused before any document.
    write_text(m + "/vocab.txt", vocab + "zzextra\n");
    r = embed_with(m, dir + "/c");
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, m + "/vocab.txt has 30523 entries") && has(r.err, "vocab_size is 30522"))
        << r.err;

    fs::remove(m + "/vocab.txt");
    r = embed_with(m, dir + "/d");
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, m + "/vocab.txt: No such file or directory")) << r.err;

    std::string weights = copy_of(kTiny, "cut-weights") + "/model.safetensors";
    fs::resize_file(weights, fs::file_size(weights) / 2);
    r = embed_with(dir + "/cut-weights", dir + "/e");
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, weights)) << r.err;

    r = embed_with(dir + "/no-such-model", dir + "/f");
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, dir + "/no-such-model/config.json")) << r.err;
}

// ---------------------------------------------------------------- index

// Damaged index files: dre info, search and export exit 1 naming the file, never crash
// and never print results. index.faiss carries a checksum in meta.json, so damage FAISS
// would not notice (vectors, an HNSW graph whose bad links crash a search) is refused too.
TEST_F(ReliabilityTest, DamagedIndexFilesFailCleanly) {
    std::mt19937 rng(3);
    auto random_bytes = [&](size_t n) {
        std::string s(n, '\0');
        for (char &c : s)
            c = (char)(rng() & 255);
        return s;
    };
    auto flip_bytes = [&](const std::string &path) {
        std::string b = read_text(path);
        for (int i = 0; i < 16; i++)
            b[100 + rng() % (b.size() - 100)] ^= (char)(1 + rng() % 255);
        write_text(path, b);
    };
    struct damage {
        const char *name, *file;
        std::string from;
        std::function<void(const std::string &)> apply;
        const char *says; // besides the file's path
    };
    auto cut = [](const std::string &path, size_t n) { fs::resize_file(path, n); };
    std::vector<damage> cases = {
        {"faiss-half", "index.faiss", small_index,
         [&](const std::string &p) { cut(p, fs::file_size(p) / 2); }, ""},
        {"faiss-empty", "index.faiss", small_index, [&](const std::string &p) { cut(p, 0); }, ""},
        {"faiss-random", "index.faiss", small_index,
         [&](const std::string &p) { write_text(p, random_bytes(fs::file_size(p))); }, ""},
        {"faiss-flipped", "index.faiss", small_index, flip_bytes, "damaged"},
        {"hnsw-flipped", "index.faiss", hnsw_index, flip_bytes, "damaged"},
        {"docs-one-page", "docs.sqlite", small_index, [&](const std::string &p) { cut(p, 4096); },
         ""},
        {"docs-half", "docs.sqlite", small_index,
         [&](const std::string &p) { cut(p, fs::file_size(p) / 2); }, ""},
        {"docs-empty", "docs.sqlite", small_index, [&](const std::string &p) { cut(p, 0); }, ""},
        {"docs-random", "docs.sqlite", small_index,
         [&](const std::string &p) { write_text(p, random_bytes(fs::file_size(p))); }, ""},
        {"meta-half", "meta.json", small_index,
         [&](const std::string &p) { cut(p, fs::file_size(p) / 2); }, "malformed JSON"},
    };
    for (const damage &c : cases) {
        SCOPED_TRACE(c.name);
        std::string ix = copy_of(c.from, c.name);
        std::string path = ix + "/" + c.file;
        c.apply(path);
        std::vector<std::vector<std::string>> commands = {
            {"info", ix},
            {"search", "--model", kTiny, "--device", "cpu", ix, "w1 w2"},
            {"export", ix, dir + "/out.npy"},
        };
        for (auto &cmd : commands) {
            outcome r = run_dre(cmd);
            EXPECT_EQ(r.signal, 0) << cmd[0] << " crashed: " << r;
            EXPECT_EQ(r.exit_code, 1) << cmd[0] << ": " << r;
            EXPECT_TRUE(has(r.err, path)) << cmd[0] << ": " << r.err;
            EXPECT_TRUE(has(r.err, c.says)) << cmd[0] << ": " << r.err;
            EXPECT_EQ(r.out, "") << cmd[0];
        }
    }

    // A meta.json from before the checksum (no "index_checksum") still opens.
    std::string old = copy_of(small_index, "no-checksum");
    edit_json(old + "/meta.json",
              [](cJSON *root) { cJSON_DeleteItemFromObject(root, "index_checksum"); });
    outcome r = run_dre({"info", old});
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(has(r.out, "documents    300\n")) << r.out;
}

// A meta.json whose weights hash or dimension is not the model's: search, eval and
// embed --append refuse, naming meta.json, and change nothing.
TEST_F(ReliabilityTest, MetaJsonThatDisagreesWithTheModelIsRefused) {
    ASSERT_TRUE(exists(kMiniLM + "/model.safetensors")) << kMiniLM << ": run tools/setup.sh";
    std::string ix = copy_of(small_index, "other-hash");
    std::string meta = ix + "/meta.json";
    edit_json(meta, [](cJSON *root) {
        cJSON_ReplaceItemInObject(root, "weights_sha256",
                                  cJSON_CreateString(std::string(64, '0').c_str()));
    });
    std::string before = read_text(meta);
    std::string more = dir + "/more.jsonl", queries = dir + "/q.jsonl", qrels = dir + "/qrels.tsv";
    write_text(more, short_corpus(1000, 5));
    write_text(queries, doc_line("q1", "w1 w2"));
    write_text(qrels, "q1\td1\t1\n");

    outcome r = run_dre({"search", "--model", kTiny, "--device", "cpu", ix, "w1"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "model and index disagree: " + meta)) << r.err;
    EXPECT_EQ(r.out, "");
    r = run_dre(embed_args({"-q", "--append", more, ix}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "model and index disagree: " + meta)) << r.err;
    r = run_dre({"eval", "--model", kTiny, "--device", "cpu", "--index", ix, "--queries", queries,
                 "--qrels", qrels});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "model and index disagree: " + meta)) << r.err;
    EXPECT_EQ(read_text(meta), before);
    EXPECT_EQ(files_in(ix), kIndexFiles);
    EXPECT_EQ(dump(ix).count, 300);

    // Another dimension: the index has the small model's 32, MiniLM makes 384.
    meta = small_index + "/meta.json";
    r = run_dre({"search", "--model", kMiniLM, "--device", "cpu", small_index, "w1"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, meta) && has(r.err, "dim 32") && has(r.err, "dim 384")) << r.err;
    r = run_dre(
        {"embed", "-q", "--model", kMiniLM, "--device", "cpu", "--append", more, small_index});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, meta) && has(r.err, "dim 32")) << r.err;
    EXPECT_EQ(files_in(small_index), kIndexFiles);

    // meta.json against the other files of the folder.
    ix = copy_of(small_index, "other-dim");
    edit_json(ix + "/meta.json",
              [](cJSON *root) { cJSON_ReplaceItemInObject(root, "dim", cJSON_CreateNumber(64)); });
    r = run_dre({"info", ix});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, ix + ": files disagree: meta.json says 300 vectors of dim 64")) << r.err;
}

// A disk that fills up (RLIMIT_FSIZE) during dre embed: exit 1 naming the file, no
// index.faiss or meta.json, and --resume without the limit gives the uninterrupted index.
// The limits fall in the staging docstore (its BM25 table growing with it), in the staged
// vectors (without BM25, whose table would reach the limit first), and in the last block
// of index.faiss (the one FAISS flushes when it closes the file).
TEST_F(ReliabilityTest, DiskFullLeavesNoHalfIndexAndResumeFinishesIt) {
    std::string corpus = dir + "/c.jsonl";
    write_text(corpus, short_corpus(0, 1000));
    std::vector<std::string> args[2] = {
        embed_args({"-q", "--checkpoint-every", "16", corpus}),
        embed_args({"-q", "--no-bm25", "--checkpoint-every", "16", corpus})};
    std::string whole[2] = {dir + "/whole", dir + "/whole-no-bm25"};
    for (int b = 0; b < 2; b++) {
        std::vector<std::string> whole_args = args[b];
        whole_args.push_back(whole[b]);
        outcome r = run_dre(whole_args);
        ASSERT_EQ(r.exit_code, 0) << r;
    }
    const size_t vectors_bytes = 1000 * 32 * sizeof(float);
    const size_t faiss_bytes = fs::file_size(whole[0] + "/index.faiss");
    ASSERT_GT(faiss_bytes, vectors_bytes + 10);
    ASSERT_GT(fs::file_size(whole[1] + "/docs.sqlite"), 20000u);
    ASSERT_LT(fs::file_size(whole[1] + "/docs.sqlite"), vectors_bytes / 2);

    struct limit {
        size_t bytes;
        const char *file;
        int no_bm25;
    } limits[] = {{20000, "embed-docs.sqlite", 0},
                  {vectors_bytes / 2, "embed-vectors.f32", 1},
                  {faiss_bytes - 10, "index.faiss.tmp", 0}};
    outcome r;
    for (const limit &l : limits) {
        SCOPED_TRACE(l.file);
        std::string ix = dir + "/limit" + std::to_string(l.bytes);
        std::vector<std::string> a = args[l.no_bm25];
        a.push_back(ix);
        r = run_dre(a, l.bytes);
        EXPECT_EQ(r.exit_code, 1) << r;
        EXPECT_TRUE(has(r.err, ix + "/" + l.file) && has(r.err, "File too large")) << r.err;
        std::set<std::string> left = files_in(ix);
        EXPECT_EQ(left.count("index.faiss") + left.count("meta.json"), 0u) << "a half index";
        EXPECT_EQ(left.count("index.faiss.tmp"), 0u);
        a.insert(a.begin() + 1, "--resume");
        r = run_dre(a);
        ASSERT_EQ(r.exit_code, 0) << r;
        EXPECT_EQ(files_in(ix), kIndexFiles);
        expect_same_index(ix, whole[l.no_bm25]);
    }
}

// The same during --append: the previous index stays complete and readable, and
// --append --resume then gives what an uninterrupted append gives.
TEST_F(ReliabilityTest, DiskFullDuringAppendKeepsThePreviousIndex) {
    std::string first = dir + "/first.jsonl", second = dir + "/second.jsonl";
    write_text(first, short_corpus(0, 500));
    write_text(second, short_corpus(500, 500));
    std::string base = dir + "/base";
    outcome r = run_dre(embed_args({"-q", "--checkpoint-every", "16", first, base}));
    ASSERT_EQ(r.exit_code, 0) << r;
    std::string want = copy_of(base, "want");
    std::vector<std::string> append = embed_args({"-q", "--append", "--checkpoint-every", "16"});
    std::vector<std::string> a = append;
    a.insert(a.end(), {second, want});
    r = run_dre(a);
    ASSERT_EQ(r.exit_code, 0) << r;
    ASSERT_EQ(dump(want).count, 1000);

    // while copying the docstore, while staging, while writing index.faiss
    size_t base_docs = fs::file_size(base + "/docs.sqlite");
    for (size_t limit :
         {base_docs / 2, base_docs + 30000, (size_t)fs::file_size(want + "/index.faiss") - 10}) {
        SCOPED_TRACE(limit);
        std::string ix = copy_of(base, "ix" + std::to_string(limit));
        a = append;
        a.insert(a.end(), {second, ix});
        r = run_dre(a, limit);
        EXPECT_EQ(r.exit_code, 1) << r;
        EXPECT_TRUE(has(r.err, ix + "/") && has(r.err, "File too large")) << r.err;
        expect_same_index(ix, base); // the previous index, untouched
        a.insert(a.begin() + 1, "--resume");
        r = run_dre(a);
        ASSERT_EQ(r.exit_code, 0) << r;
        EXPECT_EQ(files_in(ix), kIndexFiles);
        expect_same_index(ix, want);
    }
}

// The other files dre writes: dre export's .npy and ids, dre eval's run file.
TEST_F(ReliabilityTest, DiskFullWhileExportingOrWritingTheRunFile) {
    std::string npy = dir + "/vectors.npy", ids = dir + "/ids.txt";
    outcome r = run_dre({"export", small_index, npy}, 10000);
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, npy + ": File too large")) << r.err;
    r = run_dre({"export", small_index, npy, "--ids", ids}, 1000);
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, "File too large")) << r.err;

    std::string queries = dir + "/q.jsonl", qrels = dir + "/qrels.tsv", run = dir + "/run.trec";
    write_text(queries, doc_line("q1", "w1 w2") + doc_line("q2", "w5"));
    write_text(qrels, "q1\td1\t1\nq2\td5\t1\n");
    r = run_dre({"eval", "--model", kTiny, "--device", "cpu", "--index", small_index, "--queries",
                 queries, "--qrels", qrels, "--run", run},
                2000); // 200 lines of about 30 bytes
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, run + ": write: File too large")) << r.err;
}

// ---------------------------------------------------------------- queries, qrels, -k

TEST_F(ReliabilityTest, BadQueryAndQrelsFilesAndKBounds) {
    std::string good_q = dir + "/q.jsonl", good_qrels = dir + "/qrels.tsv";
    write_text(good_q, doc_line("q1", "w1 w2") + doc_line("q2", "w5"));
    write_text(good_qrels, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td5\t1\n");
    std::string bad_json = dir + "/bad.jsonl", bad_tsv = dir + "/bad.tsv", dup = dir + "/dup.jsonl";
    write_text(bad_json, doc_line("q1", "w1") + "{\"_id\": \"q2\", \"text\": }\n");
    write_text(bad_tsv, "q1\tw1\nq2\tw2\nno tab here\n");
    write_text(dup, doc_line("q1", "w1") + doc_line("q2", "w2") + doc_line("q1", "w3"));
    std::string bad_qrels = dir + "/bad.qrels.tsv", bad_score = dir + "/score.qrels.tsv";
    write_text(bad_qrels, "q1\td1\t1\nq2\td5\t1\nq2\td6\n");
    write_text(bad_score, "q1\td1\t1\nq2\td5\thigh\n"); // (on line 1 it would be a header)
    const std::vector<std::string> search = {"search", "--model", kTiny, "--device", "cpu"};
    const std::vector<std::string> eval = {"eval", "--model", kTiny,      "--device",
                                           "cpu",  "--index", small_index};
    auto with = [](std::vector<std::string> a, std::vector<std::string> more) {
        a.insert(a.end(), more.begin(), more.end());
        return a;
    };

    struct bad_file {
        std::string path, says;
    } bad_queries[] = {{bad_json, bad_json + ":2: malformed JSON"},
                       {bad_tsv, bad_tsv + ":3:"},
                       {dup, dup + ":3: duplicate query id \"q1\""}};
    for (const bad_file &b : bad_queries) {
        outcome r = run_dre(with(search, {"--queries", b.path, small_index}));
        EXPECT_EQ(r.exit_code, 1) << r;
        EXPECT_TRUE(has(r.err, b.says)) << r.err;
        EXPECT_EQ(r.out, "");
        r = run_dre(with(eval, {"--queries", b.path, "--qrels", good_qrels}));
        EXPECT_EQ(r.exit_code, 1) << r;
        EXPECT_TRUE(has(r.err, b.says)) << r.err;
        EXPECT_EQ(r.out, "");
    }
    outcome r = run_dre(with(eval, {"--queries", good_q, "--qrels", bad_qrels}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, bad_qrels + ":3:") && has(r.err, "found 2 fields")) << r.err;
    r = run_dre(with(eval, {"--queries", good_q, "--qrels", bad_score}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, bad_score + ":2:") && has(r.err, "not an integer")) << r.err;
    r = run_dre(with(eval, {"--queries", dir + "/none.jsonl", "--qrels", good_qrels}));
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(has(r.err, dir + "/none.jsonl")) << r.err;

    // -k: below 1 is a usage error; above the index size is cut to it.
    for (const char *k : {"0", "-1", "abc"}) {
        r = run_dre(with(search, {"-k", k, small_index, "w1"}));
        EXPECT_EQ(r.exit_code, 2) << "-k " << k << ": " << r;
        EXPECT_TRUE(has(r.err, "-k")) << r.err;
        r = run_dre(with(eval, {"-k", k, "--queries", good_q, "--qrels", good_qrels}));
        EXPECT_EQ(r.exit_code, 2) << "-k " << k << ": " << r;
    }
    r = run_dre(with(eval, {"-k", "100001", "--queries", good_q, "--qrels", good_qrels}));
    EXPECT_EQ(r.exit_code, 2) << r;
    r = run_dre(with(search, {"-k", "1000", "--queries", good_q, small_index}));
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(lines_of(r.out).size(), 600u); // every document for each of 2 queries
    EXPECT_TRUE(has(r.err, "note: -k 1000 is more than the 300 documents")) << r.err;
    std::string run_file = dir + "/run.trec";
    r = run_dre(with(
        eval, {"-k", "100000", "--queries", good_q, "--qrels", good_qrels, "--run", run_file}));
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(has(r.out, "queries 2")) << r.out;
    EXPECT_EQ(lines_of(read_text(run_file)).size(), 600u);
}

// ---------------------------------------------------------------- kill -9

// dre embed --append killed with SIGKILL at random moments (mid-window, mid-checkpoint,
// while the finished index replaces the old one): after every kill the folder holds either
// a complete index (the old one, or the new one) or a checkpoint to resume from, and the
// resumed append equals an uninterrupted one bit for bit.
TEST_F(ReliabilityTest, KillsDuringAppendLoseNothing) {
    std::string first = dir + "/first.jsonl", second = dir + "/second.jsonl";
    write_text(first, short_corpus(0, 400));
    write_text(second, short_corpus(400, 1600));
    std::string base = dir + "/base";
    outcome r = run_dre(embed_args({"-q", first, base}));
    ASSERT_EQ(r.exit_code, 0) << r;
    std::string want = copy_of(base, "want"), ix = copy_of(base, "ix");
    std::vector<std::string> append =
        embed_args({"-q", "--append", "--resume", "--checkpoint-every", "4", second});
    std::vector<std::string> a = append;
    a.push_back(want);
    r = run_dre(a);
    ASSERT_EQ(r.exit_code, 0) << r;

    a = append;
    a.push_back(ix);
    std::vector<std::string> full = {kDre};
    full.insert(full.end(), a.begin(), a.end());
    std::vector<char *> argv;
    for (auto &s : full)
        argv.push_back(const_cast<char *>(s.c_str()));
    argv.push_back(nullptr);
    // Each run is killed a few milliseconds after its checkpoint passes a random target;
    // a target at the end puts the kill in the finishing renames.
    const long long kNew = 1600;
    std::mt19937 rng(5);
    int kills = 0, late = 0;
    long long last = 0;
    bool finished = false;
    for (int attempt = 0; attempt < 40 && !finished; attempt++) {
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 1);
            dup2(devnull, 2);
            execv(argv[0], argv.data());
            _exit(127);
        }
        ASSERT_GT(pid, 0);
        long long target = std::min(kNew, last + 1 + (long long)(rng() % (kNew / 5)));
        int status = 0;
        bool exited = false;
        auto start = std::chrono::steady_clock::now();
        while (last < kNew && !(exited = waitpid(pid, &status, WNOHANG) == pid) &&
               checkpoint_count(ix) < target) {
            ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        if (!exited && last >= kNew && ++late > 3) { // enough tries at the finish: let it end
            ASSERT_EQ(waitpid(pid, &status, 0), pid);
            exited = true;
        }
        if (!exited) {
            // Just past the target checkpoint; right after the last one (inside the finish);
            // or, with everything staged, somewhere in start-up or the finish.
            int ms = target < kNew ? (int)(rng() % 15)
                     : last < kNew ? (int)(rng() % 4)
                                   : (int)(rng() % 120);
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            kill(pid, SIGKILL);
            ASSERT_EQ(waitpid(pid, &status, 0), pid);
        }
        if (WIFEXITED(status)) {
            ASSERT_EQ(WEXITSTATUS(status), 0);
            finished = true;
            break;
        }
        kills++;
        index_dump now = dump(ix);
        bool resumable = exists(ix + "/" + kCheckpoint);
        EXPECT_TRUE(resumable || now.opened)
            << "after kill " << kills << ": no complete index and nothing to resume";
        if (now.opened) EXPECT_TRUE(now.count == 400 || now.count == 2000) << now.count;
        if (!resumable && now.opened && now.count == 2000) finished = true; // killed on exit
        last = std::max(last, checkpoint_count(ix));
    }
    printf("[          ] %d kills\n", kills);
    EXPECT_GE(kills, 3);
    if (!finished) {
        r = run_dre(a);
        ASSERT_EQ(r.exit_code, 0) << r;
    }
    std::set<std::string> left = files_in(ix);
    left.erase("embed.lock"); // a run killed just before it removed its (released) lock
    EXPECT_EQ(left, kIndexFiles);
    expect_same_index(ix, want);
}

} // namespace
