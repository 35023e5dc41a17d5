/* cmd_serve.c — `dre serve --index DIR`: the retrieval service (dre_server_*) until SIGINT
 * or SIGTERM, which stop it gracefully: no new connections, the requests in flight
 * answered, exit 0. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"

#define STOP_TIMEOUT_MS 10000

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: dre serve --index DIR [options]\n"
        "\n"
        "Serves an index over HTTP until SIGINT or SIGTERM (then finishes the requests in\n"
        "flight and exits 0):\n"
        "  POST /v1/embeddings  OpenAI's embeddings API: {\"input\": \"text\" or [...],\n"
        "                       \"encoding_format\": \"float\"|\"base64\", \"dimensions\": N}\n"
        "  POST /search         {\"query\": \"text\"} or {\"queries\": [...]}, \"k\", \"mode\",\n"
        "                       \"fusion\", \"alpha\", \"depth\", \"rrf_k\", \"params\",\n"
        "                       \"return_text\"\n"
        "  GET  /health         200 once serving (no API key needed)\n"
        "  GET  /info           model, dim, documents, device, version\n"
        "  GET  /metrics        Prometheus text: requests, latency, batches, queue, tokens,\n"
        "                       connections (open, refused, timed out)\n"
        "Concurrent requests are embedded together in one encoder batch.\n"
        "\n"
        "  --index DIR            the index folder made by `dre embed`\n"
        "  --model DIR            its model (default: $DRE_MODEL or models/all-MiniLM-L6-v2)\n"
        "  --device D             auto, cpu or gpu (default auto)\n"
        "  --precision P          fp32 (default), bf16 or int8: the CPU encoder's products\n"
        "                         in bf16, or with int8 weights and bf16 activations (CPUs\n"
        "                         with AVX-512 BF16; faster, cosine to fp32 >= 0.999)\n"
        "  --host ADDR            IPv4 address to listen on (default 127.0.0.1)\n"
        "  --port N               default 8080; 0 picks a free one\n"
        "  --api-key KEY          require \"Authorization: Bearer KEY\" (default\n"
        "                         $DRE_API_KEY; none when both are unset)\n"
        "  --max-batch-tokens N   tokens of one batch of requests (default 16384)\n"
        "  --max-wait-ms N        how long a batch waits for more requests (default 2)\n"
        "  --max-inputs N         texts in one request (default 2048)\n"
        "  --max-body-bytes N     request body limit (default 8388608)\n"
        "  --threads N            HTTP threads (default: the cores, at least 2)\n"
        "  --max-connections N    connections open at once; more are closed as they come\n"
        "                         (default: the file-descriptor limit, raised to its hard\n"
        "                         limit, less 256, at most 65536)\n"
        "  --max-connections-per-client N  the same for one client address (default 256;\n"
        "                         0: none; behind a reverse proxy all clients share its address)\n"
        "  --request-timeout S    a request's headers and body must be in within S seconds of\n"
        "                         its connection (default 10); none while it is computed\n"
        "  --idle-timeout S       a kept-alive connection is closed when its next request is\n"
        "                         not in within S seconds of the last answer (default 15)\n"
        "  --log-level L          info (a line per request) or warn (default info)\n"
        "  -h, --help             this help\n");
}

static void log_line(void *ctx, const char *line) {
    (void)ctx;
    char stamp[32];
    const time_t t = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    fprintf(stderr, "%s %s\n", stamp, line);
}

/* Seconds (0.001 .. 86400, decimals allowed) to milliseconds; 0 if s is not that. */
static int32_t parse_seconds(const char *s) {
    char *end;
    const double v = strtod(s, &end);
    return *s && !*end && v >= 0.001 && v <= 86400 ? (int32_t)(v * 1000 + 0.5) : 0;
}

int cmd_serve(int argc, char **argv) {
    const char *index_dir = NULL, *model_dir = NULL, *v;
    dre_device device = DRE_DEVICE_AUTO;
    dre_precision precision = DRE_PRECISION_FP32;
    /* every connection is a descriptor: the soft limit (often 1024) up to the hard one, before
     * the options take their default cap from it */
    struct rlimit fds;
    if (getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
        fds.rlim_cur = fds.rlim_max;
        setrlimit(RLIMIT_NOFILE, &fds);
    }
    dre_server_options o;
    dre_server_options_init(&o);
    o.api_key = getenv("DRE_API_KEY");
    int log_info = 1;
    long long n;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int missing = 0;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if ((v = cli_option(argc, argv, &i, "--index", &missing))) {
            index_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--model", &missing))) {
            model_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--device", &missing))) {
            if (dre_device_parse(v, &device) != DRE_OK)
                return cli_usage_error("serve", "--device must be auto, cpu or gpu, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--precision", &missing))) {
            if (dre_precision_parse(v, &precision) != DRE_OK)
                return cli_usage_error("serve",
                                       "--precision must be fp32, bf16 or int8, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--host", &missing))) {
            o.host = v;
        } else if ((v = cli_option(argc, argv, &i, "--port", &missing))) {
            char *end;
            const long port = strtol(v, &end, 10);
            if (*end || port < 0 || port > 65535)
                return cli_usage_error("serve", "--port needs 0..65535, not '%s'", v);
            o.port = (int)port;
        } else if ((v = cli_option(argc, argv, &i, "--api-key", &missing))) {
            o.api_key = v;
        } else if ((v = cli_option(argc, argv, &i, "--max-batch-tokens", &missing))) {
            if (!cli_parse_count(v, 1 << 24, &n))
                return cli_usage_error("serve", "--max-batch-tokens needs a count, not '%s'", v);
            o.max_batch_tokens = (int32_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--max-wait-ms", &missing))) {
            char *end;
            const long ms = strtol(v, &end, 10);
            if (*end || ms < 0 || ms > 10000)
                return cli_usage_error("serve", "--max-wait-ms needs 0..10000, not '%s'", v);
            o.max_wait_ms = (int32_t)ms;
        } else if ((v = cli_option(argc, argv, &i, "--max-inputs", &missing))) {
            if (!cli_parse_count(v, 1000000, &n))
                return cli_usage_error("serve", "--max-inputs needs a count, not '%s'", v);
            o.max_inputs = (int32_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--max-body-bytes", &missing))) {
            if (!cli_parse_count(v, (long long)1 << 32, &n))
                return cli_usage_error("serve", "--max-body-bytes needs a count, not '%s'", v);
            o.max_body_bytes = (size_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--threads", &missing))) {
            if (!cli_parse_count(v, 1024, &n))
                return cli_usage_error("serve", "--threads needs a count in 1..1024, not '%s'", v);
            o.threads = (int)n;
        } else if ((v = cli_option(argc, argv, &i, "--max-connections", &missing))) {
            if (!cli_parse_count(v, 1 << 20, &n))
                return cli_usage_error("serve", "--max-connections needs a count, not '%s'", v);
            o.max_connections = (int32_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--max-connections-per-client", &missing))) {
            if (strcmp(v, "0") && !cli_parse_count(v, 1 << 20, &n))
                return cli_usage_error("serve",
                                       "--max-connections-per-client needs a count or 0, not "
                                       "'%s'",
                                       v);
            o.max_connections_per_client = strcmp(v, "0") ? (int32_t)n : 0;
        } else if ((v = cli_option(argc, argv, &i, "--request-timeout", &missing))) {
            if (!(o.request_timeout_ms = parse_seconds(v)))
                return cli_usage_error("serve", "--request-timeout needs seconds, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--idle-timeout", &missing))) {
            if (!(o.idle_timeout_ms = parse_seconds(v)))
                return cli_usage_error("serve", "--idle-timeout needs seconds, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--log-level", &missing))) {
            if (strcmp(v, "info") && strcmp(v, "warn"))
                return cli_usage_error("serve", "--log-level must be info or warn, not '%s'", v);
            log_info = !strcmp(v, "info");
        } else if (missing) {
            return cli_usage_error("serve", "%s needs a value", arg);
        } else {
            return cli_usage_error("serve", "unknown option '%s'", arg);
        }
    }
    if (!index_dir) return cli_usage_error("serve", "needs --index DIR");
    if (log_info) o.log = log_line;

    /* SIGINT and SIGTERM wait for sigwait below: blocked here, before any thread starts,
     * so that every thread inherits the mask */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    dre_searcher *s = NULL;
    const int ranks = dre_dist_size();
    const char *model = model_dir ? model_dir : cli_default_model();
    dre_status st = DRE_OK;
    if (ranks > 1) { /* mpirun: rank 0 serves, the others answer for their shards */
        sigaddset(&stop_signals, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
        st = dre_dist_searcher_open(index_dir, model, device, precision, &s);
        if (st != DRE_OK) return cli_dist_fail("serve", st);
        if (dre_dist_rank() != 0) return 0; /* released by rank 0 */
    } else {
        st = dre_searcher_open_with(index_dir, model, device, precision, &s);
        if (st != DRE_OK) return cli_fail("serve", st);
    }
    dre_server *srv = NULL;
    if ((st = dre_server_open(s, &o, &srv)) != DRE_OK) {
        if (ranks > 1) {
            dre_dist_searcher_close(s);
            return cli_dist_fail("serve", st);
        }
        dre_searcher_close(s);
        return cli_fail("serve", st);
    }
    const dre_index_info *ii = dre_index_get_info(dre_searcher_index(s));
    fprintf(stderr,
            "dre serve: listening on http://%s:%d (%s, %lld documents, dim %d, %s%s); "
            "SIGINT or SIGTERM stops\n",
            o.host, dre_server_port(srv), ii->model_name, (long long)ii->count, ii->dim,
            dre_device_name(dre_searcher_device(s)),
            o.api_key && o.api_key[0] ? ", API key required" : "");
    fprintf(stderr,
            "dre serve: at most %d connections (%d per client%s); a request in whole within "
            "%.3g s; kept-alive connections idle at most %.3g s\n",
            o.max_connections, o.max_connections_per_client,
            o.max_connections_per_client ? "" : ": no cap", o.request_timeout_ms / 1000.0,
            o.idle_timeout_ms / 1000.0);
    if (ranks > 1)
        fprintf(stderr,
                "dre serve: %d shards over %d ranks (rank 0 embeds and answers HTTP); under "
                "mpirun, SIGUSR1 stops every rank once the requests in flight are answered\n",
                ii->n_shards, ranks);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "dre serve: %s: finishing the requests in flight\n",
            sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1" : "SIGTERM");
    dre_server_close(srv, STOP_TIMEOUT_MS);
    if (ranks > 1)
        dre_dist_searcher_close(s);
    else
        dre_searcher_close(s);
    fprintf(stderr, "dre serve: stopped\n");
    return 0;
}
