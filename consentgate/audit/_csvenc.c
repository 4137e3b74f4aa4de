/* Optional C accelerator for consentgate.audit.formats.CsvEncoder.
 *
 * encode(rows, kinds) -> bytes: the same bytes as the pure-Python encoder
 * (tests/test_audit_csvenc.py checks them against each other):
 *
 *   kinds[i] == 0  text column: made CSV-safe column by column, exactly as
 *                  formats._csv_text_column decides:
 *                    - a cell holds U+001F, or a cell begins with = + - @ TAB CR '
 *                      -> every cell of the column on its own (neutralize, then
 *                         quote when it holds , " CR or LF);
 *                    - else a cell holds , " CR or LF -> every cell quoted;
 *                    - else the cells as they are;
 *   kinds[i] == 1  integer column: str(value);
 *   kinds[i] == 2  boolean column: "true" / "false" for 1/True and 0/False.
 *
 * Cells are joined with "," and rows end with CRLF; the result is UTF-8. All the
 * characters the rules look at are ASCII, and in UTF-8 an ASCII byte only ever
 * stands for itself, so the scans run over each cell's UTF-8 bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum { KIND_TEXT = 0, KIND_INT = 1, KIND_BOOL = 2 };
enum { MODE_RAW = 0, MODE_QUOTE_ALL = 1, MODE_EACH = 2 };

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buffer;

static int buf_reserve(Buffer *b, Py_ssize_t more) {
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buffer *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
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

/* UTF-8 of a text cell; TypeError for anything but str (as str.join would). */
static const char *text_of(PyObject *value, Py_ssize_t *n) {
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "text column holds %.80s, not str",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(value, n);
}

/* The quoted form: '"' + (apostrophe if neutralize) + s with '"' doubled + '"'. */
static int put_quoted(Buffer *b, const char *s, Py_ssize_t n, int neutralize) {
    if (buf_reserve(b, 2 * n + 3) < 0) return -1;
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

static int put_int(Buffer *b, PyObject *value) {
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) {
            char tmp[32];
            int n = snprintf(tmp, sizeof tmp, "%lld", v);
            return buf_put(b, tmp, n);
        }
        PyErr_Clear();
    }
    PyObject *text = PyObject_Str(value); /* what map(str, col) writes */
    if (text == NULL) return -1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = s == NULL ? -1 : buf_put(b, s, n);
    Py_DECREF(text);
    return rc;
}

static int put_bool(Buffer *b, PyObject *value) {
    /* ("false", "true")[value]: 0/False and 1/True only */
    if (PyLong_Check(value)) {
        int overflow = 0;
        long v = PyLong_AsLongAndOverflow(value, &overflow);
        if (!overflow && v == 1) return buf_put(b, "true", 4);
        if (!overflow && v == 0) return buf_put(b, "false", 5);
        if (v == -1 && PyErr_Occurred()) return -1;
    }
    PyErr_Format(PyExc_ValueError, "boolean column holds %R, not 0/1", value);
    return -1;
}

static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *rows_in, *kinds_in;
    if (!PyArg_ParseTuple(args, "OO:encode", &rows_in, &kinds_in)) return NULL;
    PyObject *rows = PySequence_Fast(rows_in, "rows must be a sequence");
    if (rows == NULL) return NULL;
    PyObject *kinds = PySequence_Fast(kinds_in, "kinds must be a sequence");
    if (kinds == NULL) {
        Py_DECREF(rows);
        return NULL;
    }
    Py_ssize_t nrows = PySequence_Fast_GET_SIZE(rows);
    Py_ssize_t ncols = PySequence_Fast_GET_SIZE(kinds);
    int *kind = PyMem_Calloc((size_t)(ncols ? ncols : 1), sizeof(int));
    int *mode = PyMem_Calloc((size_t)(ncols ? ncols : 1), sizeof(int));
    Buffer b = {NULL, 0, 0};
    PyObject *result = NULL;
    if (kind == NULL || mode == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < ncols; c++) {
        long k = PyLong_AsLong(PySequence_Fast_GET_ITEM(kinds, c));
        if (k == -1 && PyErr_Occurred()) goto done;
        if (k < KIND_TEXT || k > KIND_BOOL) {
            PyErr_Format(PyExc_ValueError, "unknown column kind %ld", k);
            goto done;
        }
        kind[c] = (int)k;
    }
    for (Py_ssize_t r = 0; r < nrows; r++) { /* pass 1: each text column's mode */
        PyObject *row = PySequence_Fast_GET_ITEM(rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ncols) {
            PyErr_Format(PyExc_ValueError, "row %zd is not a tuple of %zd values", r, ncols);
            goto done;
        }
        for (Py_ssize_t c = 0; c < ncols; c++) {
            if (kind[c] != KIND_TEXT || mode[c] == MODE_EACH) continue;
            Py_ssize_t n;
            const char *s = text_of(PyTuple_GET_ITEM(row, c), &n);
            if (s == NULL) goto done;
            if ((n > 0 && is_danger(s[0])) || memchr(s, 0x1f, (size_t)n) != NULL) {
                mode[c] = MODE_EACH;
            } else if (mode[c] == MODE_RAW && needs_quotes(s, n)) {
                mode[c] = MODE_QUOTE_ALL;
            }
        }
    }
    for (Py_ssize_t r = 0; r < nrows; r++) { /* pass 2: the bytes */
        PyObject *row = PySequence_Fast_GET_ITEM(rows, r);
        for (Py_ssize_t c = 0; c < ncols; c++) {
            if (c && buf_put(&b, ",", 1) < 0) goto done;
            PyObject *value = PyTuple_GET_ITEM(row, c);
            int rc;
            if (kind[c] == KIND_INT) {
                rc = put_int(&b, value);
            } else if (kind[c] == KIND_BOOL) {
                rc = put_bool(&b, value);
            } else {
                Py_ssize_t n;
                const char *s = text_of(value, &n);
                if (s == NULL) goto done;
                if (mode[c] == MODE_RAW) {
                    rc = buf_put(&b, s, n);
                } else if (mode[c] == MODE_QUOTE_ALL) {
                    rc = put_quoted(&b, s, n, 0);
                } else {
                    rc = put_each(&b, s, n);
                }
            }
            if (rc < 0) goto done;
        }
        if (buf_put(&b, "\r\n", 2) < 0) goto done;
    }
    result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
done:
    PyMem_Free(b.data);
    PyMem_Free(kind);
    PyMem_Free(mode);
    Py_DECREF(rows);
    Py_DECREF(kinds);
    return result;
}

/* JSON string body of UTF-8 bytes, as json.encoder.encode_basestring writes it
 * (ensure_ascii off): " \\ and the C0 controls escaped (\\n \\r \\t \\b \\f
 * short, the rest as \\u00xx), everything else as it is. */
static int put_json_string(Buffer *b, const char *s, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(b, 6 * n + 2) < 0) return -1;
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

/* encode_jsonl(rows, kinds, keys) -> bytes: one JSON object per row, "\\n" after
 * each; keys[i] is the column's key already written as JSON ('"seq":'). Integers as
 * str(value), booleans as true/false, text as JSON strings. */
static PyObject *encode_jsonl(PyObject *self, PyObject *args) {
    PyObject *rows_in, *kinds_in, *keys_in;
    if (!PyArg_ParseTuple(args, "OOO:encode_jsonl", &rows_in, &kinds_in, &keys_in)) return NULL;
    PyObject *rows = PySequence_Fast(rows_in, "rows must be a sequence");
    PyObject *kinds = rows ? PySequence_Fast(kinds_in, "kinds must be a sequence") : NULL;
    PyObject *keys = kinds ? PySequence_Fast(keys_in, "keys must be a sequence") : NULL;
    Buffer b = {NULL, 0, 0};
    PyObject *result = NULL;
    int *kind = NULL;
    if (keys == NULL) goto done;
    Py_ssize_t nrows = PySequence_Fast_GET_SIZE(rows);
    Py_ssize_t ncols = PySequence_Fast_GET_SIZE(kinds);
    if (PySequence_Fast_GET_SIZE(keys) != ncols) {
        PyErr_SetString(PyExc_ValueError, "one key per column");
        goto done;
    }
    kind = PyMem_Calloc((size_t)(ncols ? ncols : 1), sizeof(int));
    if (kind == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < ncols; c++) {
        long k = PyLong_AsLong(PySequence_Fast_GET_ITEM(kinds, c));
        if (k == -1 && PyErr_Occurred()) goto done;
        if (k < KIND_TEXT || k > KIND_BOOL) {
            PyErr_Format(PyExc_ValueError, "unknown column kind %ld", k);
            goto done;
        }
        kind[c] = (int)k;
        if (!PyUnicode_Check(PySequence_Fast_GET_ITEM(keys, c))) {
            PyErr_SetString(PyExc_TypeError, "keys are str");
            goto done;
        }
    }
    for (Py_ssize_t r = 0; r < nrows; r++) {
        PyObject *row = PySequence_Fast_GET_ITEM(rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ncols) {
            PyErr_Format(PyExc_ValueError, "row %zd is not a tuple of %zd values", r, ncols);
            goto done;
        }
        if (buf_put(&b, "{", 1) < 0) goto done;
        for (Py_ssize_t c = 0; c < ncols; c++) {
            Py_ssize_t kn;
            const char *ks = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(keys, c), &kn);
            if (ks == NULL || (c && buf_put(&b, ",", 1) < 0) || buf_put(&b, ks, kn) < 0) goto done;
            PyObject *value = PyTuple_GET_ITEM(row, c);
            int rc;
            if (kind[c] == KIND_INT) {
                rc = put_int(&b, value);
            } else if (kind[c] == KIND_BOOL) {
                rc = put_bool(&b, value);
            } else {
                Py_ssize_t n;
                const char *s = text_of(value, &n);
                if (s == NULL) goto done;
                rc = put_json_string(&b, s, n);
            }
            if (rc < 0) goto done;
        }
        if (buf_put(&b, "}\n", 2) < 0) goto done;
    }
    result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
done:
    PyMem_Free(b.data);
    PyMem_Free(kind);
    Py_XDECREF(rows);
    Py_XDECREF(kinds);
    Py_XDECREF(keys);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_jsonl", encode_jsonl, METH_VARARGS,
     "encode_jsonl(rows, kinds, keys) -> bytes: JSON Lines of rows (see the source)."},
    {"encode", encode, METH_VARARGS,
     "encode(rows, kinds) -> bytes: CSV lines of rows (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "consentgate.audit._csvenc",
    "C accelerator for the CSV export encoder.", -1, methods,
};

PyMODINIT_FUNC PyInit__csvenc(void) { return PyModule_Create(&module); }
