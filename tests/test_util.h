// test_util.h — small helpers shared by the GoogleTest files: whole files in and out, lines
// and tab fields, folder listings, substring checks, cosine and an index's checkpoint count.
#ifndef DRE_TEST_UTIL_H
#define DRE_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dre.h"

namespace test_util {

// The whole file as bytes; "" when it cannot be read.
inline std::string read_text(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Replaces the file with exactly these bytes.
inline void write_text(const std::string &path, const std::string &text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
}

inline bool exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

// The non-empty lines of text, without their '\n'.
inline std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> lines;
    std::stringstream ss(text);
    std::string line;
    while (std::getline(ss, line))
        if (!line.empty()) lines.push_back(line);
    return lines;
}

// The tab-separated fields of one line, empty ones kept: "a\t" gives {"a", ""}.
inline std::vector<std::string> split_tabs(const std::string &line) {
    std::vector<std::string> fields;
    size_t start = 0;
    for (;;) {
        size_t tab = line.find('\t', start);
        fields.push_back(line.substr(start, tab == std::string::npos ? tab : tab - start));
        if (tab == std::string::npos) return fields;
        start = tab + 1;
    }
}

// The names in a folder, without "." and ".."; empty when it cannot be opened.
inline std::set<std::string> files_in(const std::string &dir) {
    std::set<std::string> names;
    DIR *d = opendir(dir.c_str());
    if (!d) return names;
    while (struct dirent *e = readdir(d))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names.insert(e->d_name);
    closedir(d);
    return names;
}

inline bool has(const std::string &haystack, const std::string &needle) {
    return haystack.find(needle) != std::string::npos;
}

// a.b / (|a| |b|), summed in double.
// How far dre's fp32 CPU vectors may be from sentence-transformers' (torch, fp32): two fp32
// forward passes differing only in summation order end 1 - cos ~ 1e-12 apart (measured at
// most 2.2e-12); 1e-9 leaves three orders of magnitude for other CPUs, while a wrong operator
// (a missing eps or bias, the other GELU, a pooling slip) moves 1 - cos past 1e-7.
constexpr double kCpuParity = 1e-9;

inline double cosine(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int j = 0; j < dim; j++) {
        ab += (double)a[j] * b[j];
        aa += (double)a[j] * a[j];
        bb += (double)b[j] * b[j];
    }
    return ab / std::sqrt(aa * bb);
}

// The "count" of an index folder's checkpoint, -1 if there is none (or it is mid-rename).
inline long long checkpoint_count(const std::string &dir) {
    cJSON *root = cJSON_Parse(read_text(dir + "/embed-checkpoint.json").c_str());
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(root, "count");
    long long n = cJSON_IsNumber(count) ? (long long)count->valuedouble : -1;
    cJSON_Delete(root);
    return n;
}

// The BM25 index of an index folder's docs.sqlite, token by token: "term doc column
// offset" for every token FTS5 holds (read through fts5vocab), preceded by the outcome of
// FTS5's integrity check (the index agrees with the documents). Empty without a BM25 table.
inline std::vector<std::string> bm25_dump(const std::string &index_dir) {
    std::vector<std::string> rows;
    sqlite3 *db = nullptr;
    // read-write: FTS5 runs its integrity check as an INSERT command (which writes nothing)
    if (sqlite3_open_v2((index_dir + "/docs.sqlite").c_str(), &db, SQLITE_OPEN_READWRITE,
                        nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        return {"cannot open docs.sqlite"};
    }
    sqlite3_stmt *s = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE name = 'docs_fts'", -1, &s,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        sqlite3_finalize(s);
        s = nullptr;
        int rc = sqlite3_exec(db, "INSERT INTO docs_fts (docs_fts) VALUES ('integrity-check')",
                              nullptr, nullptr, nullptr);
        rows.push_back(rc == SQLITE_OK ? "integrity ok" : sqlite3_errmsg(db));
        sqlite3_exec(db,
                     "CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, docs_fts, instance)",
                     nullptr, nullptr, nullptr);
        if (sqlite3_prepare_v2(db,
                               "SELECT term, doc, col, offset FROM temp.terms ORDER BY doc, col, "
                               "offset",
                               -1, &s, nullptr) == SQLITE_OK)
            while (sqlite3_step(s) == SQLITE_ROW)
                rows.push_back(std::string((const char *)sqlite3_column_text(s, 0)) + " " +
                               std::to_string(sqlite3_column_int64(s, 1)) + " " +
                               (const char *)sqlite3_column_text(s, 2) + " " +
                               std::to_string(sqlite3_column_int64(s, 3)));
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rows;
}

// seqs packed in order into batches of at most budget tokens.
struct packed_batch {
    std::vector<int32_t> ids, cu_seqlens;
    size_t first; // index of the batch's first sequence
};
inline std::vector<packed_batch> pack_in_order(const std::vector<std::vector<int32_t>> &seqs,
                                               int32_t budget) {
    std::vector<packed_batch> batches;
    for (size_t i = 0; i < seqs.size(); i++) {
        if (batches.empty() || (int32_t)(batches.back().ids.size() + seqs[i].size()) > budget)
            batches.push_back({{}, {0}, i});
        packed_batch &b = batches.back();
        b.ids.insert(b.ids.end(), seqs[i].begin(), seqs[i].end());
        b.cu_seqlens.push_back((int32_t)b.ids.size());
    }
    return batches;
}

// dre_encoder_submit / dre_encoder_collect with DRE_ENCODER_DEPTH batches queued give
// exactly what dre_encoder_encode gives; queueing one batch too many, collecting with
// nothing queued and encoding with batches queued are refused. Needs >= 3 batches.
inline void expect_submit_collect_equals_encode(dre_encoder *enc,
                                                const std::vector<std::vector<int32_t>> &seqs,
                                                int32_t budget) {
    const int32_t dim = dre_encoder_dim(enc);
    const std::vector<packed_batch> batches = pack_in_order(seqs, budget);
    ASSERT_GE(batches.size(), 3u);
    std::vector<float> want(seqs.size() * dim), got(seqs.size() * dim, NAN);
    for (const packed_batch &b : batches)
        ASSERT_EQ(DRE_OK,
                  dre_encoder_encode(enc, b.ids.data(), b.cu_seqlens.data(),
                                     (int32_t)b.cu_seqlens.size() - 1, &want[b.first * dim]))
            << dre_last_error();
    size_t collected = 0;
    auto collect = [&] {
        int32_t n = -1;
        const packed_batch &b = batches[collected++];
        ASSERT_EQ(DRE_OK, dre_encoder_collect(enc, &got[b.first * dim], &n)) << dre_last_error();
        EXPECT_EQ((int32_t)b.cu_seqlens.size() - 1, n);
    };
    for (size_t i = 0; i < batches.size(); i++) {
        const packed_batch &b = batches[i];
        const int32_t n = (int32_t)b.cu_seqlens.size() - 1;
        if (i - collected == DRE_ENCODER_DEPTH) {
            EXPECT_EQ(DRE_ERR_INVALID_ARG,
                      dre_encoder_submit(enc, b.ids.data(), b.cu_seqlens.data(), n));
            EXPECT_EQ(
                DRE_ERR_INVALID_ARG,
                dre_encoder_encode(enc, b.ids.data(), b.cu_seqlens.data(), n, &got[b.first * dim]));
            ASSERT_NO_FATAL_FAILURE(collect());
        }
        ASSERT_EQ(DRE_OK, dre_encoder_submit(enc, b.ids.data(), b.cu_seqlens.data(), n))
            << dre_last_error();
    }
    while (collected < batches.size())
        ASSERT_NO_FATAL_FAILURE(collect());
    std::vector<float> spare(dim);
    EXPECT_EQ(DRE_ERR_INVALID_ARG, dre_encoder_collect(enc, spare.data(), nullptr));
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
        << "submit/collect differs from encode";
}

} // namespace test_util

#endif
