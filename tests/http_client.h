// http_client.h — the HTTP client of the service's GoogleTest files (server_test,
// serve_tei_test): one request over loopback through libcurl, with its status, body and
// headers. Call curl_global_init once before the first request.
#ifndef DRE_HTTP_CLIENT_H
#define DRE_HTTP_CLIENT_H

#include <curl/curl.h>

#include <string>

namespace http_client {

struct http_reply {
    long status = 0; // 0: no answer (refused, reset, timed out)
    std::string body, headers;
};

inline size_t append(char *p, size_t size, size_t n, void *out) {
    static_cast<std::string *>(out)->append(p, size * n);
    return size * n;
}

// One request with its own handle (safe from any thread); a JSON body, and an
// Authorization header when auth is given.
inline http_reply request(int port, const std::string &method, const std::string &path,
                          const std::string &body = "", const std::string &auth = "") {
    http_reply r;
    CURL *c = curl_easy_init();
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_slist *h = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!auth.empty()) h = curl_slist_append(h, ("Authorization: " + auth).c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (method == "POST") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.size());
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

} // namespace http_client

#endif
