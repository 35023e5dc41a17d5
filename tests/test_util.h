// test_util.h — small helpers shared by the GoogleTest files: whole files in and out, lines
// and tab fields, folder listings, substring checks, cosine and an index's checkpoint count.
#ifndef DRE_TEST_UTIL_H
#define DRE_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

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

} // namespace test_util

#endif
