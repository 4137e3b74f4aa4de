/* The byte-level half of the export encoders, shared by _csvenc.c (cells from Python
 * objects) and _sqlpages.c (cells straight from SQLite). Nothing here touches a Python
 * object or sets an exception, so it runs without the GIL: a function returns -1 when
 * memory runs out and the caller raises MemoryError once it holds the GIL again.
 *
 * The rules (formats.py is the reference; tests/test_audit_csvenc.py compares):
 *   CSV text column modes, decided per batch:
 *     - a cell holds U+001F, or a cell begins with = + - @ TAB CR '
 *       -> every cell of the column on its own (neutralize, then quote when it holds
 *          , " CR or LF);
 *     - else a cell holds , " CR or LF -> every cell quoted;
 *     - else the cells as they are.
 *   JSON strings as json.encoder.encode_basestring writes them.
 * All the characters the rules look at are ASCII, and in UTF-8 an ASCII byte only ever
 * stands for itself, so the scans run over each cell's UTF-8 bytes.
 */
#ifndef CONSENTGATE_CSVENC_H
#define CONSENTGATE_CSVENC_H

#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { KIND_TEXT = 0, KIND_INT = 1, KIND_BOOL = 2 };
/* how a text cell is written: the three CSV column modes, or as a JSON string */
enum { MODE_RAW = 0, MODE_QUOTE_ALL = 1, MODE_EACH = 2, MODE_JSON = 3 };

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buffer;

static int buf_reserve(Buffer *b, Py_ssize_t more) {
    if (more < 0 || more > PY_SSIZE_T_MAX - b->len) return -1;
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) return -1;
        cap *= 2;
    }
    char *data = PyMem_RawRealloc(b->data, (size_t)cap);
    if (data == NULL) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buffer *b, const char *s, Py_ssize_t n) {
    if (n == 0) return 0;
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static void buf_free(Buffer *b) {
    PyMem_RawFree(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static inline int is_danger(char c) {
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r' || c == '\'';
}

static inline int needs_quotes(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ',' || c == '"' || c == '\r' || c == '\n') return 1;
    }
    return 0;
}

/* How a CSV text column's cell moves the column's mode (the rules above). */
static inline int csv_mode_after(int mode, const char *s, Py_ssize_t n) {
    if (mode == MODE_EACH || n == 0) return mode;
    if (is_danger(s[0]) || memchr(s, 0x1f, (size_t)n) != NULL) return MODE_EACH;
    if (mode == MODE_RAW && needs_quotes(s, n)) return MODE_QUOTE_ALL;
    return mode;
}

/* The quoted form: '"' + (apostrophe if neutralize) + s with '"' doubled + '"'. */
static int put_quoted(Buffer *b, const char *s, Py_ssize_t n, int neutralize) {
    if (n > (PY_SSIZE_T_MAX - 3) / 2 || buf_reserve(b, 2 * n + 3) < 0) return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    if (neutralize) *out++ = '\'';
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == '"') *out++ = '"';
        *out++ = s[i];
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

/* formats._csv_cell: neutralize, then quote when needed. */
static int put_each(Buffer *b, const char *s, Py_ssize_t n) {
    int neutralize = n > 0 && is_danger(s[0]);
    /* after the apostrophe the cell's own characters decide the quoting */
    if (needs_quotes(s, n)) return put_quoted(b, s, n, neutralize);
    if (neutralize && buf_put(b, "'", 1) < 0) return -1;
    return buf_put(b, s, n);
}

/* JSON string of UTF-8 bytes, as json.encoder.encode_basestring writes it
 * (ensure_ascii off): " \\ and the C0 controls escaped (\\n \\r \\t \\b \\f
 * short, the rest as \\u00xx), everything else as it is. */
static int put_json_string(Buffer *b, const char *s, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (n > (PY_SSIZE_T_MAX - 2) / 6 || buf_reserve(b, 6 * n + 2) < 0) return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = hex[c >> 4];
                *out++ = hex[c & 15];
        }
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

/* A text cell in a column's mode (MODE_JSON: as a JSON string). */
static int put_text(Buffer *b, int mode, const char *s, Py_ssize_t n) {
    switch (mode) {
        case MODE_RAW: return buf_put(b, s, n);
        case MODE_QUOTE_ALL: return put_quoted(b, s, n, 0);
        case MODE_EACH: return put_each(b, s, n);
        default: return put_json_string(b, s, n);
    }
}

/* str(v) of an integer. */
static int put_int64(Buffer *b, long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", v);
    return buf_put(b, tmp, n);
}

#endif
