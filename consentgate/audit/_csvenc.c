/* Optional C accelerator for consentgate.audit.formats (CsvEncoder, JsonlEncoder).
 *
 * encode(rows, kinds) -> bytes and encode_jsonl(rows, kinds, keys) -> bytes: the same
 * bytes as the pure-Python encoders (tests/test_audit_csvenc.py checks them against each
 * other), with the cell rules of csvenc.h:
 *
 *   kinds[i] == 0  text column: CSV-safe column by column (csvenc.h), or a JSON string;
 *   kinds[i] == 1  integer column: str(value);
 *   kinds[i] == 2  boolean column: "true" / "false" for 1/True and 0/False.
 *
 * CSV cells are joined with "," and rows end with CRLF; the result is UTF-8.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "csvenc.h"

/* UTF-8 of a text cell; TypeError for anything but str (as str.join would). */
static const char *text_of(PyObject *value, Py_ssize_t *n) {
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "text column holds %.80s, not str",
                     Py_TYPE(value)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(value, n);
}

static int put_int(Buffer *b, PyObject *value) {
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) return put_int64(b, v);
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

/* One cell: integers and booleans are written alike in both formats. */
static int put_cell(Buffer *b, int kind, int text_mode, PyObject *value) {
    if (kind == KIND_INT) return put_int(b, value);
    if (kind == KIND_BOOL) return put_bool(b, value);
    Py_ssize_t n;
    const char *s = text_of(value, &n);
    if (s == NULL) return -1;
    return put_text(b, text_mode, s, n);
}

/* The column kinds as a C array (PyMem_Free it), or NULL with an exception set. */
static int *read_kinds(PyObject *kinds, Py_ssize_t ncols) {
    int *kind = PyMem_Calloc((size_t)(ncols ? ncols : 1), sizeof(int));
    if (kind == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t c = 0; c < ncols; c++) {
        long k = PyLong_AsLong(PySequence_Fast_GET_ITEM(kinds, c));
        if (k == -1 && PyErr_Occurred()) goto fail;
        if (k < KIND_TEXT || k > KIND_BOOL) {
            PyErr_Format(PyExc_ValueError, "unknown column kind %ld", k);
            goto fail;
        }
        kind[c] = (int)k;
    }
    return kind;
fail:
    PyMem_Free(kind);
    return NULL;
}

/* rows[r], checked to be a tuple of ncols values (borrowed), or NULL. */
static PyObject *row_at(PyObject *rows, Py_ssize_t r, Py_ssize_t ncols) {
    PyObject *row = PySequence_Fast_GET_ITEM(rows, r);
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ncols) {
        PyErr_Format(PyExc_ValueError, "row %zd is not a tuple of %zd values", r, ncols);
        return NULL;
    }
    return row;
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
    int *kind = read_kinds(kinds, ncols);
    int *mode = PyMem_Calloc((size_t)(ncols ? ncols : 1), sizeof(int));
    Buffer b = {NULL, 0, 0};
    PyObject *result = NULL;
    if (kind == NULL) goto done;
    if (mode == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t r = 0; r < nrows; r++) { /* pass 1: each text column's mode */
        PyObject *row = row_at(rows, r, ncols);
        if (row == NULL) goto done;
        for (Py_ssize_t c = 0; c < ncols; c++) {
            if (kind[c] != KIND_TEXT || mode[c] == MODE_EACH) continue;
            Py_ssize_t n;
            const char *s = text_of(PyTuple_GET_ITEM(row, c), &n);
            if (s == NULL) goto done;
            mode[c] = csv_mode_after(mode[c], s, n);
        }
    }
    for (Py_ssize_t r = 0; r < nrows; r++) { /* pass 2: the bytes */
        PyObject *row = PySequence_Fast_GET_ITEM(rows, r);
        for (Py_ssize_t c = 0; c < ncols; c++) {
            if (c && buf_put(&b, ",", 1) < 0) goto done;
            if (put_cell(&b, kind[c], mode[c], PyTuple_GET_ITEM(row, c)) < 0) goto done;
        }
        if (buf_put(&b, "\r\n", 2) < 0) goto done;
    }
    result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
done:
    if (result == NULL && !PyErr_Occurred()) PyErr_NoMemory(); /* csvenc.h raises nothing */
    buf_free(&b);
    PyMem_Free(kind);
    PyMem_Free(mode);
    Py_DECREF(rows);
    Py_DECREF(kinds);
    return result;
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
    kind = read_kinds(kinds, ncols);
    if (kind == NULL) goto done;
    for (Py_ssize_t c = 0; c < ncols; c++) {
        if (!PyUnicode_Check(PySequence_Fast_GET_ITEM(keys, c))) {
            PyErr_SetString(PyExc_TypeError, "keys are str");
            goto done;
        }
    }
    for (Py_ssize_t r = 0; r < nrows; r++) {
        PyObject *row = row_at(rows, r, ncols);
        if (row == NULL || buf_put(&b, "{", 1) < 0) goto done;
        for (Py_ssize_t c = 0; c < ncols; c++) {
            Py_ssize_t kn;
            const char *ks = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(keys, c), &kn);
            if (ks == NULL || (c && buf_put(&b, ",", 1) < 0) || buf_put(&b, ks, kn) < 0) goto done;
            if (put_cell(&b, kind[c], MODE_JSON, PyTuple_GET_ITEM(row, c)) < 0) goto done;
        }
        if (buf_put(&b, "}\n", 2) < 0) goto done;
    }
    result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
done:
    if (result == NULL && !PyErr_Occurred()) PyErr_NoMemory(); /* csvenc.h raises nothing */
    buf_free(&b);
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
    "C accelerator for the export encoders (CSV, JSON Lines).", -1, methods,
};

PyMODINIT_FUNC PyInit__csvenc(void) { return PyModule_Create(&module); }
