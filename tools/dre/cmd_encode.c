/* cmd_encode.c — `dre encode`: texts on stdin, one per line, to embeddings: a float32
 * .npy [n, dim] file, or TSV (one line per text, dim tab-separated values). Reads and
 * encodes the input in chunks, so memory does not grow with its length. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* texts read, encoded and written per round */
#define ENCODE_CHUNK 8192
/* the .npy header is written with a placeholder shape and rewritten at the end: 10
 * bytes of magic, version and length, then the dict padded to this many bytes */
#define NPY_HEADER_LEN 118

typedef enum { FORMAT_DEFAULT, FORMAT_NPY, FORMAT_TSV } out_format;

typedef struct {
    const char *model_dir, *output;
    dre_device device;
    dre_precision precision;
    out_format format;
    int32_t budget_tokens;
    int n_threads, quiet;
} encode_args;

static void usage(FILE *f) {
    fprintf(f,
            "usage: dre encode [options] < texts.txt\n"
            "\n"
            "Embeds texts read from stdin, one per line (an empty line is an empty text),\n"
            "with the model's pooling and normalisation, in input order.\n"
            "\n"
            "  --model DIR         model folder (default: $DRE_MODEL or models/all-MiniLM-L6-v2)\n"
            "  --device D          auto, cpu or gpu (default auto: the GPU if there is one)\n"
            "  --precision P       fp32 (default), bf16 or int8: the CPU encoder's products\n"
            "                      in bf16, or with int8 weights and bf16 activations (CPUs\n"
            "                      with AVX-512 BF16; faster, cosine to fp32 >= 0.999)\n"
            "  --format F          npy (float32 [n, dim]) or tsv (default: npy with --output,\n"
            "                      else tsv)\n"
            "  --output FILE       write there (required for npy; tsv goes to stdout without it)\n"
            "  --batch-tokens N    tokens per packed batch (default 16384)\n"
            "  --threads N         tokenizer threads (default: all cores)\n"
            "  -q, --quiet         no summary on stderr\n"
            "  -h, --help          this help\n");
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, encode_args *a) {
    memset(a, 0, sizeof *a);
    a->model_dir = cli_default_model();
    a->device = DRE_DEVICE_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        int missing = 0;
        long long n;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(arg, "-q") || !strcmp(arg, "--quiet")) {
            a->quiet = 1;
        } else if ((v = cli_option(argc, argv, &i, "--model", &missing))) {
            a->model_dir = v;
        } else if ((v = cli_option(argc, argv, &i, "--output", &missing))) {
            a->output = v;
        } else if ((v = cli_option(argc, argv, &i, "--device", &missing))) {
            if (dre_device_parse(v, &a->device) != DRE_OK)
                return cli_usage_error("encode", "--device must be auto, cpu or gpu, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--precision", &missing))) {
            if (dre_precision_parse(v, &a->precision) != DRE_OK)
                return cli_usage_error("encode",
                                       "--precision must be fp32, bf16 or int8, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--format", &missing))) {
            if (!strcmp(v, "npy"))
                a->format = FORMAT_NPY;
            else if (!strcmp(v, "tsv"))
                a->format = FORMAT_TSV;
            else
                return cli_usage_error("encode", "--format must be npy or tsv, not '%s'", v);
        } else if ((v = cli_option(argc, argv, &i, "--batch-tokens", &missing))) {
            if (!cli_parse_count(v, 1 << 24, &n))
                return cli_usage_error("encode", "--batch-tokens needs a positive count, not '%s'",
                                       v);
            a->budget_tokens = (int32_t)n;
        } else if ((v = cli_option(argc, argv, &i, "--threads", &missing))) {
            if (!cli_parse_count(v, 1024, &n))
                return cli_usage_error("encode", "--threads needs a count in 1..1024, not '%s'", v);
            a->n_threads = (int)n;
        } else if (missing) {
            return cli_usage_error("encode", "%s needs a value", arg);
        } else {
            return cli_usage_error("encode", "unknown option '%s'", arg);
        }
    }
    if (a->format == FORMAT_DEFAULT) a->format = a->output ? FORMAT_NPY : FORMAT_TSV;
    if (a->format == FORMAT_NPY && !a->output)
        return cli_usage_error("encode", "--format npy needs --output FILE");
    return -1;
}

/* The .npy v1.0 header for a C-order float32 [rows, dim] array, always 128 bytes. */
static int write_npy_header(FILE *f, long long rows, int dim) {
    char dict[NPY_HEADER_LEN + 1];
    int n = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %d), }", rows, dim);
    if (n < 0 || n >= NPY_HEADER_LEN) return 0;
    memset(dict + n, ' ', (size_t)(NPY_HEADER_LEN - 1 - n));
    dict[NPY_HEADER_LEN - 1] = '\n';
    const unsigned char preamble[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, NPY_HEADER_LEN & 0xff, NPY_HEADER_LEN >> 8};
    return fwrite(preamble, 1, sizeof preamble, f) == sizeof preamble &&
           fwrite(dict, 1, NPY_HEADER_LEN, f) == NPY_HEADER_LEN;
}

static int write_rows(FILE *f, out_format format, const float *emb, size_t rows, int dim) {
    if (format == FORMAT_NPY)
        return fwrite(emb, sizeof *emb, rows * (size_t)dim, f) == rows * (size_t)dim;
    for (size_t i = 0; i < rows; i++) {
        /* %.9g: enough digits for a float to read back exactly */
        for (int j = 0; j < dim; j++)
            if (fprintf(f, j ? "\t%.9g" : "%.9g", emb[i * (size_t)dim + (size_t)j]) < 0) return 0;
        if (putc('\n', f) == EOF) return 0;
    }
    return 1;
}

int cmd_encode(int argc, char **argv) {
    encode_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;

    dre_model *model = NULL;
    dre_tokenizer *tok = NULL;
    dre_encoder *enc = NULL;
    char **texts = calloc(ENCODE_CHUNK, sizeof *texts);
    size_t *caps = calloc(ENCODE_CHUNK, sizeof *caps);
    float *emb = NULL;
    FILE *out = NULL;
    dre_status st;
    rc = 1;
    if (!texts || !caps) {
        fprintf(stderr, "dre encode: out of memory\n");
        goto done;
    }
    if ((st = dre_model_open(a.model_dir, &model)) != DRE_OK ||
        (st = dre_tokenizer_open(a.model_dir, &tok)) != DRE_OK ||
        (st = dre_encoder_open_with(model, a.device, a.budget_tokens, a.precision, &enc)) != DRE_OK) {
        rc = cli_fail("encode", st);
        goto done;
    }
    const int dim = dre_encoder_dim(enc);
    emb = malloc((size_t)ENCODE_CHUNK * (size_t)dim * sizeof *emb);
    if (!emb) {
        fprintf(stderr, "dre encode: out of memory\n");
        goto done;
    }
    out = a.output ? fopen(a.output, a.format == FORMAT_NPY ? "wb" : "w") : stdout;
    if (!out) {
        perror(a.output);
        goto done;
    }
    if (a.format == FORMAT_NPY && !write_npy_header(out, 0, dim)) goto write_error;

    long long n_texts = 0;
    double seconds = 0.0;
    for (int end_of_input = 0; !end_of_input;) {
        size_t n = 0;
        while (n < ENCODE_CHUNK) {
            if (cli_read_line(stdin, &texts[n], &caps[n]) < 0) {
                end_of_input = 1;
                break;
            }
            n++;
        }
        if (n == 0) break;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = dre_encode_texts(enc, tok, (const char *const *)texts, n, a.n_threads, emb);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        seconds += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (st != DRE_OK) {
            rc = cli_fail("encode", st);
            goto done;
        }
        if (!write_rows(out, a.format, emb, n, dim)) goto write_error;
        n_texts += (long long)n;
    }
    if (ferror(stdin)) {
        perror("dre encode: stdin");
        goto done;
    }
    if (a.format == FORMAT_NPY &&
        (fseek(out, 0, SEEK_SET) != 0 || !write_npy_header(out, n_texts, dim))) {
        fprintf(stderr, "dre encode: %s: cannot rewrite the .npy header (not a seekable file?)\n",
                a.output);
        goto done;
    }
    if (fflush(out) != 0) goto write_error;
    if (!a.quiet)
        fprintf(stderr, "dre encode: %lld texts, dim %d, %s, %.3f s encoding (%.1f texts/s)\n",
                n_texts, dim, dre_device_name(dre_encoder_device(enc)), seconds,
                seconds > 0 ? (double)n_texts / seconds : 0.0);
    rc = 0;
    goto done;
write_error:
    fprintf(stderr, "dre encode: writing %s failed\n", a.output ? a.output : "stdout");
done:
    if (out && out != stdout && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "dre encode: writing %s failed\n", a.output);
        rc = 1;
    }
    for (size_t i = 0; texts && i < ENCODE_CHUNK; i++)
        free(texts[i]);
    free(texts);
    free(caps);
    free(emb);
    dre_encoder_close(enc);
    dre_tokenizer_close(tok);
    dre_model_close(model);
    return rc;
}
