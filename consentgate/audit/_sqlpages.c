/* Optional C reader for exporting a SQLite consent log: pages of records read with
 * SQLite's C API and encoded straight to CSV or JSON Lines bytes, without building a
 * Python object per cell, and without the GIL while it reads and encodes.
 *
 *   Pages(path, sql, params, kinds, keys, batch, stat_columns)
 *     path     the database file as bytes (os.fsencode);
 *     sql      a SELECT whose first parameter is the keyset bound ("seq > ?") and
 *              whose first column is seq; params binds the rest (int, str or None);
 *     kinds    per column 0 text, 1 integer, 2 boolean (csvenc.h);
 *     keys     None for CSV, else per column its JSON key ('"seq":') for JSON Lines;
 *     stat_columns  the indexes of (created_at, chain_id, chain_seq, hash).
 *   Pages.page(after) -> (data, rows, first_seq, last_seq, created_min, created_max,
 *                         [(chain_id, rows, first_chain_seq, last_chain_seq, last_hash)])
 *              or None when a value is not what the schema promises (a NULL, a REAL, a
 *              BLOB, a boolean other than 0/1, text that is not strict UTF-8): the
 *              caller then reads that page through Python's sqlite3 and the reference
 *              encoder, which write (or refuse) exactly what they always did.
 *   Pages.close()
 *   sqlite_version() -> the linked SQLite's version
 *
 * SQLite errors raise sqlite3.OperationalError, as the Python reader does.
 *
 * The bytes of a page are the bytes formats.CsvEncoder / JsonlEncoder write for the
 * same rows (tests/test_audit_sqlpages.py compares them). Each page() is one statement
 * run: the read transaction ends with the page, as with the Python reader.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sqlite3.h>

#include "csvenc.h"

typedef struct {
    long long i;     /* integer and boolean cells */
    Py_ssize_t off;  /* text cells: where their bytes are in the arena */
    Py_ssize_t len;
} Cell;

typedef struct {
    Py_ssize_t id_off, id_len; /* chain_id in the arena */
    long long rows, first, last;
    Py_ssize_t hash_off, hash_len;
} ChainStat;

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    sqlite3_stmt *stmt;
    int ncols, batch, csv, busy, initialized;
    int *kind, *mode;
    Buffer keys;          /* JSON Lines: the keys' UTF-8, one after another */
    Py_ssize_t *key_end;  /* where key c ends in keys (it starts where c - 1 ends) */
    int created_col, chain_col, chain_seq_col, hash_col;
    Cell *cells;      /* batch * ncols */
    Buffer arena;     /* the text of the page's cells */
    Buffer out;       /* the encoded page */
    ChainStat *chains;
    Py_ssize_t nchains, chains_cap;
} Pages;

/* Strict UTF-8, as Python decodes it (no surrogates, no overlong forms, <= U+10FFFF). */
static int utf8_valid(const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && s[i + 1] < 0xA0) return 0; /* overlong */
            if (c == 0xED && s[i + 1] >= 0xA0) return 0; /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && s[i + 1] < 0x90) return 0; /* overlong */
            if (c == 0xF4 && s[i + 1] >= 0x90) return 0; /* > U+10FFFF */
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

enum { PAGE_OK = 0, PAGE_ODD = 1, PAGE_NOMEM = 2, PAGE_SQLITE = 3 };

static inline int same_text(const Pages *p, Py_ssize_t off, Py_ssize_t len, Py_ssize_t off2,
                            Py_ssize_t len2) {
    return len == len2 &&
           (len == 0 || memcmp(p->arena.data + off, p->arena.data + off2, (size_t)len) == 0);
}

/* Text order as Python compares str: UTF-8 bytes order as code points do. */
static int text_cmp(const Pages *p, const Cell *a, const Cell *b) {
    Py_ssize_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(p->arena.data + a->off, p->arena.data + b->off, (size_t)n) : 0;
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

static int note_chain(Pages *p, const Cell *row) {
    const Cell *id = &row[p->chain_col];
    ChainStat *cs = NULL;
    /* the usual page is one writer's records: the last chain seen matches */
    for (Py_ssize_t k = p->nchains - 1; k >= 0; k--) {
        if (same_text(p, p->chains[k].id_off, p->chains[k].id_len, id->off, id->len)) {
            cs = &p->chains[k];
            break;
        }
    }
    if (cs == NULL) {
        if (p->nchains == p->chains_cap) {
            Py_ssize_t cap = p->chains_cap ? 2 * p->chains_cap : 8;
            ChainStat *grown = PyMem_RawRealloc(p->chains, (size_t)cap * sizeof(ChainStat));
            if (grown == NULL) return -1;
            p->chains = grown;
            p->chains_cap = cap;
        }
        cs = &p->chains[p->nchains++];
        cs->id_off = id->off;
        cs->id_len = id->len;
        cs->rows = 0;
        cs->first = row[p->chain_seq_col].i;
    }
    cs->rows++;
    cs->last = row[p->chain_seq_col].i;
    cs->hash_off = row[p->hash_col].off;
    cs->hash_len = row[p->hash_col].len;
    return 0;
}

/* Step one page into cells + arena (no GIL). *nrows gets the row count. */
static int read_page(Pages *p, long long after, int *nrows) {
    sqlite3_stmt *st = p->stmt;
    sqlite3_reset(st);
    if (sqlite3_bind_int64(st, 1, after) != SQLITE_OK) return PAGE_SQLITE;
    p->arena.len = 0;
    p->nchains = 0;
    int r = 0;
    for (; r < p->batch; r++) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) break;
        if (rc != SQLITE_ROW) return PAGE_SQLITE;
        Cell *row = &p->cells[(Py_ssize_t)r * p->ncols];
        for (int c = 0; c < p->ncols; c++) {
            int type = sqlite3_column_type(st, c);
            if (p->kind[c] == KIND_TEXT) {
                if (type != SQLITE_TEXT) return PAGE_ODD;
                const unsigned char *s = sqlite3_column_text(st, c);
                Py_ssize_t n = sqlite3_column_bytes(st, c);
                if (s == NULL && (n || sqlite3_errcode(p->db) == SQLITE_NOMEM)) return PAGE_NOMEM;
                if (!utf8_valid(s, n)) return PAGE_ODD;
                row[c].off = p->arena.len;
                row[c].len = n;
                if (n && buf_put(&p->arena, (const char *)s, n) < 0) return PAGE_NOMEM;
            } else {
                if (type != SQLITE_INTEGER) return PAGE_ODD;
                row[c].i = sqlite3_column_int64(st, c);
                if (p->kind[c] == KIND_BOOL && row[c].i != 0 && row[c].i != 1) return PAGE_ODD;
            }
        }
        if (note_chain(p, row) < 0) return PAGE_NOMEM;
    }
    sqlite3_reset(st); /* the read transaction ends with the page */
    *nrows = r;
    return PAGE_OK;
}

static int encode_page(Pages *p, int nrows) {
    Buffer *b = &p->out;
    const char *arena = p->arena.data;
    b->len = 0;
    for (int c = 0; c < p->ncols; c++) p->mode[c] = p->csv ? MODE_RAW : MODE_JSON;
    if (p->csv) {
        for (int r = 0; r < nrows; r++) {
            const Cell *row = &p->cells[(Py_ssize_t)r * p->ncols];
            for (int c = 0; c < p->ncols; c++) {
                if (p->kind[c] == KIND_TEXT)
                    p->mode[c] = csv_mode_after(p->mode[c], arena + row[c].off, row[c].len);
            }
        }
    }
    for (int r = 0; r < nrows; r++) {
        const Cell *row = &p->cells[(Py_ssize_t)r * p->ncols];
        if (!p->csv && buf_put(b, "{", 1) < 0) return -1;
        for (int c = 0; c < p->ncols; c++) {
            if (c && buf_put(b, ",", 1) < 0) return -1;
            if (!p->csv) {
                Py_ssize_t start = c ? p->key_end[c - 1] : 0;
                if (buf_put(b, p->keys.data + start, p->key_end[c] - start) < 0) return -1;
            }
            int rc;
            if (p->kind[c] == KIND_INT) {
                rc = put_int64(b, row[c].i);
            } else if (p->kind[c] == KIND_BOOL) {
                rc = row[c].i ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
            } else {
                rc = put_text(b, p->mode[c], arena + row[c].off, row[c].len);
            }
            if (rc < 0) return -1;
        }
        if (buf_put(b, p->csv ? "\r\n" : "}\n", 2) < 0) return -1;
    }
    return 0;
}

static PyObject *text_at(Pages *p, Py_ssize_t off, Py_ssize_t len) {
    return PyUnicode_DecodeUTF8(p->arena.data + off, len, "strict");
}

static PyObject *page_result(Pages *p, int nrows) {
    PyObject *chains = PyList_New(p->nchains);
    if (chains == NULL) return NULL;
    for (Py_ssize_t k = 0; k < p->nchains; k++) {
        ChainStat *cs = &p->chains[k];
        PyObject *item = Py_BuildValue(
            "(NLLLN)", text_at(p, cs->id_off, cs->id_len), cs->rows, cs->first, cs->last,
            text_at(p, cs->hash_off, cs->hash_len));
        if (item == NULL) {
            Py_DECREF(chains);
            return NULL;
        }
        PyList_SET_ITEM(chains, k, item);
    }
    long long first_seq = 0, last_seq = 0;
    const Cell *lo = NULL, *hi = NULL;
    for (int r = 0; r < nrows; r++) {
        const Cell *cell = &p->cells[(Py_ssize_t)r * p->ncols + p->created_col];
        if (lo == NULL || text_cmp(p, cell, lo) < 0) lo = cell;
        if (hi == NULL || text_cmp(p, cell, hi) > 0) hi = cell;
    }
    if (nrows) {
        first_seq = p->cells[0].i;
        last_seq = p->cells[(Py_ssize_t)(nrows - 1) * p->ncols].i;
    }
    PyObject *lo_text = lo ? text_at(p, lo->off, lo->len) : PyUnicode_FromString("");
    PyObject *hi_text = hi ? text_at(p, hi->off, hi->len) : PyUnicode_FromString("");
    return Py_BuildValue("(y#iLLNNN)", p->out.data ? p->out.data : "", p->out.len, nrows,
                         first_seq, last_seq, lo_text, hi_text, chains);
}

static PyObject *OperationalError; /* sqlite3.OperationalError, as the Python reader raises */

static PyObject *sqlite_error(Pages *p) {
    PyErr_SetString(OperationalError, p->db ? sqlite3_errmsg(p->db) : "closed");
    return NULL;
}

static PyObject *Pages_page(Pages *p, PyObject *arg) {
    long long after = PyLong_AsLongLong(arg);
    if (after == -1 && PyErr_Occurred()) return NULL;
    if (p->stmt == NULL) {
        PyErr_SetString(PyExc_ValueError, "the reader is closed");
        return NULL;
    }
    if (p->busy) {
        PyErr_SetString(PyExc_RuntimeError, "one page at a time");
        return NULL;
    }
    p->busy = 1;
    int nrows = 0, status;
    Py_BEGIN_ALLOW_THREADS
    status = read_page(p, after, &nrows);
    if (status == PAGE_OK && encode_page(p, nrows) < 0) status = PAGE_NOMEM;
    Py_END_ALLOW_THREADS
    PyObject *result;
    switch (status) {
        case PAGE_OK: result = page_result(p, nrows); break; /* still busy: it reads the page */
        case PAGE_ODD: sqlite3_reset(p->stmt); result = Py_NewRef(Py_None); break;
        case PAGE_NOMEM: sqlite3_reset(p->stmt); result = PyErr_NoMemory(); break;
        default:
            result = sqlite_error(p);
            sqlite3_reset(p->stmt);
    }
    p->busy = 0;
    return result;
}

static void pages_close(Pages *p) {
    if (p->stmt) sqlite3_finalize(p->stmt);
    if (p->db) sqlite3_close_v2(p->db);
    p->stmt = NULL;
    p->db = NULL;
}

static PyObject *Pages_close(Pages *p, PyObject *Py_UNUSED(unused)) {
    if (p->busy) {
        PyErr_SetString(PyExc_RuntimeError, "a page is being read");
        return NULL;
    }
    pages_close(p);
    Py_RETURN_NONE;
}

static int bind_params(Pages *p, PyObject *params) {
    Py_ssize_t n = PyTuple_GET_SIZE(params);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(params, i);
        int at = (int)i + 2, rc; /* parameter 1 is the keyset bound */
        if (v == Py_None) {
            rc = sqlite3_bind_null(p->stmt, at);
        } else if (PyLong_Check(v)) {
            long long x = PyLong_AsLongLong(v);
            if (x == -1 && PyErr_Occurred()) return -1;
            rc = sqlite3_bind_int64(p->stmt, at, x);
        } else if (PyUnicode_Check(v)) {
            Py_ssize_t len;
            const char *s = PyUnicode_AsUTF8AndSize(v, &len);
            if (s == NULL) return -1;
            rc = sqlite3_bind_text64(p->stmt, at, s, (sqlite3_uint64)len, SQLITE_TRANSIENT,
                                     SQLITE_UTF8);
        } else {
            PyErr_Format(PyExc_TypeError, "parameter %zd is %.80s, not int, str or None", i,
                         Py_TYPE(v)->tp_name);
            return -1;
        }
        if (rc != SQLITE_OK) {
            sqlite_error(p);
            return -1;
        }
    }
    return 0;
}

static int Pages_init(Pages *p, PyObject *args, PyObject *kw) {
    static char *names[] = {"path", "sql", "params", "kinds", "keys", "batch", "stat_columns",
                            NULL};
    const char *path, *sql;
    PyObject *params, *kinds, *keys;
    int batch, stats[4];
    /* once only, and nothing of the object is touched before this check (a page may be
     * being read on another thread) */
    if (p->initialized) {
        PyErr_SetString(PyExc_RuntimeError, "already initialized");
        return -1;
    }
    /* path: bytes (os.fsencode), as the file system names it */
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ysO!O!Oi(iiii):Pages", names, &path, &sql,
                                     &PyTuple_Type, &params, &PyTuple_Type, &kinds, &keys,
                                     &batch, &stats[0], &stats[1], &stats[2], &stats[3]))
        return -1;
    p->initialized = 1; /* a failed init leaves an object that refuses to read */
    p->created_col = stats[0];
    p->chain_col = stats[1];
    p->chain_seq_col = stats[2];
    p->hash_col = stats[3];
    p->ncols = (int)PyTuple_GET_SIZE(kinds);
    if (batch < 1 || p->ncols < 1) {
        PyErr_SetString(PyExc_ValueError, "batch and columns must be positive");
        return -1;
    }
    p->kind = PyMem_RawCalloc((size_t)p->ncols, sizeof(int));
    p->mode = PyMem_RawCalloc((size_t)p->ncols, sizeof(int));
    p->cells = PyMem_RawCalloc((size_t)batch * (size_t)p->ncols, sizeof(Cell));
    if (!p->kind || !p->mode || !p->cells) {
        PyErr_NoMemory();
        return -1;
    }
    for (int c = 0; c < p->ncols; c++) {
        long k = PyLong_AsLong(PyTuple_GET_ITEM(kinds, c));
        if (k == -1 && PyErr_Occurred()) return -1;
        if (k < KIND_TEXT || k > KIND_BOOL) {
            PyErr_Format(PyExc_ValueError, "unknown column kind %ld", k);
            return -1;
        }
        p->kind[c] = (int)k;
    }
    int want[] = {KIND_TEXT, KIND_TEXT, KIND_INT, KIND_TEXT};
    for (int s = 0; s < 4; s++) {
        if (stats[s] < 0 || stats[s] >= p->ncols || p->kind[stats[s]] != want[s]) {
            PyErr_SetString(PyExc_ValueError, "stat_columns do not match the kinds");
            return -1;
        }
    }
    if (p->kind[0] != KIND_INT) {
        PyErr_SetString(PyExc_ValueError, "the first column is seq, an integer");
        return -1;
    }
    p->csv = keys == Py_None;
    if (!p->csv) {
        if (!PyTuple_Check(keys) || PyTuple_GET_SIZE(keys) != p->ncols) {
            PyErr_SetString(PyExc_ValueError, "keys: None or a tuple with one str per column");
            return -1;
        }
        p->key_end = PyMem_RawCalloc((size_t)p->ncols, sizeof(Py_ssize_t));
        if (p->key_end == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (int c = 0; c < p->ncols; c++) {
            PyObject *key = PyTuple_GET_ITEM(keys, c);
            Py_ssize_t kn;
            const char *ks = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &kn) : NULL;
            if (ks == NULL) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "keys are str");
                return -1;
            }
            if (buf_put(&p->keys, ks, kn) < 0) {
                PyErr_NoMemory();
                return -1;
            }
            p->key_end[c] = p->keys.len;
        }
    }
    p->batch = batch;
    int rc = sqlite3_open_v2(path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        sqlite_error(p);
        pages_close(p);
        return -1;
    }
    sqlite3_busy_timeout(p->db, 10000);
    if (sqlite3_prepare_v2(p->db, sql, -1, &p->stmt, NULL) != SQLITE_OK) {
        sqlite_error(p);
        pages_close(p);
        return -1;
    }
    if (sqlite3_column_count(p->stmt) != p->ncols ||
        sqlite3_bind_parameter_count(p->stmt) != 1 + (int)PyTuple_GET_SIZE(params)) {
        PyErr_SetString(PyExc_ValueError, "the statement does not match kinds and params");
        pages_close(p);
        return -1;
    }
    if (bind_params(p, params) < 0) {
        pages_close(p);
        return -1;
    }
    return 0;
}

static void Pages_dealloc(Pages *p) {
    pages_close(p);
    PyMem_RawFree(p->kind);
    PyMem_RawFree(p->mode);
    PyMem_RawFree(p->cells);
    PyMem_RawFree(p->chains);
    buf_free(&p->arena);
    buf_free(&p->out);
    buf_free(&p->keys);
    PyMem_RawFree(p->key_end);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyMethodDef Pages_methods[] = {
    {"page", (PyCFunction)Pages_page, METH_O,
     "page(after) -> (data, rows, first_seq, last_seq, created_min, created_max, chains)"
     " or None (read this page through Python)."},
    {"close", (PyCFunction)Pages_close, METH_NOARGS, "Close the connection."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PagesType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "consentgate.audit._sqlpages.Pages",
    .tp_basicsize = sizeof(Pages),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pages of a consent-log export, read and encoded in C (see the source).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pages_init,
    .tp_dealloc = (destructor)Pages_dealloc,
    .tp_methods = Pages_methods,
};


static PyObject *library_version(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyUnicode_FromString(sqlite3_libversion());
}

static PyMethodDef functions[] = {
    {"sqlite_version", library_version, METH_NOARGS, "The linked SQLite's version."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "consentgate.audit._sqlpages",
    "C reader for SQLite exports (pages encoded as CSV or JSON Lines).", -1, functions,
};

PyMODINIT_FUNC PyInit__sqlpages(void) {
    if (OperationalError == NULL) {
        PyObject *sqlite3_module = PyImport_ImportModule("sqlite3");
        if (sqlite3_module == NULL) return NULL;
        OperationalError = PyObject_GetAttrString(sqlite3_module, "OperationalError");
        Py_DECREF(sqlite3_module);
        if (OperationalError == NULL) return NULL;
    }
    if (PyType_Ready(&PagesType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&PagesType);
    if (PyModule_AddObject(m, "Pages", (PyObject *)&PagesType) < 0) {
        Py_DECREF(&PagesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
