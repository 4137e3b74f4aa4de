/*
 * Optional accelerator for consentgate.rewriter.stream.StreamRewriter.
 *
 * The pure-Python rewriter (stream.py, _tags.py) is the reference. This module runs its
 * most common state - HTML content ("data" state) after the head snippet is placed,
 * outside SVG/MathML, with no token reporting - over a buffer, and handles every
 * construct it finds there *completely or not at all*:
 *
 *   - text, comments, bogus comments, doctype, end tags (no-ops in this state);
 *   - start tags that cannot matter (anything but the names in HTML_NAMES);
 *   - URL-bearing elements whose lower-cased tag contains no catalog hint word (the
 *     Python path's RewritePolicy.element_hint pre-check): nothing to do;
 *   - raw-text elements (style, title, textarea, xmp, noembed, noframes, iframe): the
 *     body is skipped to its end tag;
 *   - scripts without override attributes: the executable-type check, the URL decision
 *     (a Python callback with a cache) or the inline classification (a Python callback;
 *     the catalog caches by digest), the neutralizing edit, and the body skipped to its
 *     end per the script-data escape states.
 *
 * At any other construct - or one that does not end inside the buffer - it stops ("bails
 * out") at the construct's '<' without having changed anything for it, and the Python
 * code handles that construct exactly as if it had scanned up to there itself. Output
 * equality with the Python path therefore only needs each construct handled here to be
 * handled identically, which tests/test_rewriter_speedups.py checks differentially.
 *
 * The tag grammar is grammar.TAG / grammar.ATTR (possessive, so deterministic) written
 * as a loop; the attribute list matches elements.parse_attrs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* ---- character classes ----------------------------------------------------------- */

static unsigned char LOWER[256];
static unsigned char IDENTITY[256];
enum { C_WS = 1, C_SLASH = 2, C_GT = 4, C_EQ = 8, C_ALPHA = 16 };
static unsigned char CLS[256];

static void
init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        LOWER[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        IDENTITY[c] = (unsigned char)c;
        CLS[c] = 0;
        if (c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ')
            CLS[c] |= C_WS;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
            CLS[c] |= C_ALPHA;
    }
    CLS['/'] |= C_SLASH;
    CLS['>'] |= C_GT;
    CLS['='] |= C_EQ;
}

#define IS_WS(c) (CLS[(unsigned char)(c)] & C_WS)
#define IS_ALPHA(c) (CLS[(unsigned char)(c)] & C_ALPHA)
/* the end of a tag name: whitespace, '/' or '>' */
#define ENDS_TAG_NAME(c) (CLS[(unsigned char)(c)] & (C_WS | C_SLASH | C_GT))
/* the end of an attribute name (after its first character): also '=' */
#define ENDS_ATTR_NAME(c) (CLS[(unsigned char)(c)] & (C_WS | C_SLASH | C_GT | C_EQ))

/* ---- attributes ------------------------------------------------------------------ */

/* One attribute of a complete tag, offsets into the buffer (elements.Attr). */
typedef struct {
    Py_ssize_t start, end;         /* the name */
    Py_ssize_t vstart, vstop;      /* the value without quotes; vstart < 0: no value */
    Py_ssize_t value_end;          /* just after the value (after a closing quote) */
    int quoted;                    /* the value is in quotes */
} Attr;

typedef struct {
    Attr *items;
    Py_ssize_t len, cap;
    Attr small[16];
} AttrVec;

static void
attrs_init(AttrVec *v)
{
    v->items = v->small;
    v->len = 0;
    v->cap = 16;
}

static void
attrs_free(AttrVec *v)
{
    if (v->items != v->small)
        PyMem_Free(v->items);
    attrs_init(v);
}

static int
attrs_push(AttrVec *v, const Attr *a)
{
    if (v->len == v->cap) {
        Py_ssize_t cap = v->cap * 2;
        Attr *items = PyMem_Malloc((size_t)cap * sizeof(Attr));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(items, v->items, (size_t)v->len * sizeof(Attr));
        if (v->items != v->small)
            PyMem_Free(v->items);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = *a;
    return 0;
}

/*
 * grammar.TAG at d[p] == '<': a complete start or end tag. Returns the offset just after
 * its '>', -1 when the buffer holds no complete tag there (incomplete or no match), or
 * -2 on a memory error. Sets the name span; records the attributes when v != NULL.
 *
 * Every quantifier of the pattern is possessive, so this single forward pass is exactly
 * the regex: an attribute whose value cannot be read (unclosed quote, end of buffer)
 * fails the whole tag, because the name before it is not a '>'.
 */
static Py_ssize_t
match_tag(const unsigned char *d, Py_ssize_t p, Py_ssize_t n, Py_ssize_t *name_start,
          Py_ssize_t *name_end, AttrVec *v)
{
    Py_ssize_t i = p + 1;
    if (i < n && d[i] == '/')
        i++;
    if (i >= n || !IS_ALPHA(d[i]))
        return -1;
    *name_start = i++;
    while (i < n && !ENDS_TAG_NAME(d[i]))
        i++;
    *name_end = i;
    for (;;) {
        Py_ssize_t q = i;
        while (q < n && (IS_WS(d[q]) || d[q] == '/'))
            q++;
        if (q >= n)
            return -1;
        if (d[q] == '>')
            return q + 1;
        /* an attribute name: any first character but whitespace, '/', '>' */
        Attr a;
        Py_ssize_t r = q + 1;
        while (r < n && !ENDS_ATTR_NAME(d[r]))
            r++;
        a.start = q;
        a.end = r;
        a.vstart = -1;
        a.vstop = -1;
        a.quoted = 0;
        Py_ssize_t s = r;
        while (s < n && IS_WS(d[s]))
            s++;
        if (s < n && d[s] == '=') {
            Py_ssize_t t = s + 1;
            while (t < n && IS_WS(d[t]))
                t++;
            if (t >= n)
                return -1;
            unsigned char c = d[t];
            if (c == '"' || c == '\'') {
                const unsigned char *close = memchr(d + t + 1, c, (size_t)(n - t - 1));
                if (close == NULL)
                    return -1;
                a.vstart = t + 1;
                a.vstop = close - d;
                a.quoted = 1;
                i = a.vstop + 1;
            }
            else if (c == '>') { /* empty value right before '>' */
                a.vstart = a.vstop = t;
                i = t;
            }
            else {
                Py_ssize_t e = t + 1;
                while (e < n && !IS_WS(d[e]) && d[e] != '>')
                    e++;
                a.vstart = t;
                a.vstop = e;
                i = e;
            }
        }
        else {
            i = r; /* no value: the whitespace after the name belongs to the next one */
        }
        a.value_end = i;
        if (v != NULL && attrs_push(v, &a) < 0)
            return -2;
    }
}

/* The first attribute named `name` (ASCII lower case), or NULL (elements.first_values). */
static const Attr *
attr_get(const unsigned char *d, const AttrVec *v, const char *name)
{
    size_t len = strlen(name);
    for (Py_ssize_t k = 0; k < v->len; k++) {
        const Attr *a = &v->items[k];
        if ((size_t)(a->end - a->start) != len)
            continue;
        size_t j = 0;
        while (j < len && LOWER[d[a->start + j]] == (unsigned char)name[j])
            j++;
        if (j == len)
            return a;
    }
    return NULL;
}

/* ---- searches -------------------------------------------------------------------- */

/* Does d[p:] start with the ASCII lower-case word w, case-insensitively? */
static int
starts_ci(const unsigned char *d, Py_ssize_t p, Py_ssize_t n, const char *w, size_t len)
{
    if (n - p < (Py_ssize_t)len)
        return 0;
    for (size_t j = 0; j < len; j++)
        if (LOWER[d[p + j]] != (unsigned char)w[j])
            return 0;
    return 1;
}

/* grammar._DELIM: a lookahead for whitespace, '/' or '>' (needs the byte to be there). */
static int
delim_at(const unsigned char *d, Py_ssize_t p, Py_ssize_t n)
{
    return p < n && (CLS[d[p]] & (C_WS | C_SLASH | C_GT));
}

/* The end of a comment body: just after the first "--!?>" at or after p, or -1. */
static Py_ssize_t
comment_end(const unsigned char *d, Py_ssize_t p, Py_ssize_t n)
{
    while (p < n) {
        const unsigned char *dash = memchr(d + p, '-', (size_t)(n - p));
        if (dash == NULL)
            return -1;
        Py_ssize_t i = dash - d;
        if (i + 2 < n && d[i + 1] == '-') {
            if (d[i + 2] == '>')
                return i + 3;
            if (d[i + 2] == '!' && i + 3 < n && d[i + 3] == '>')
                return i + 4;
        }
        p = i + 1;
    }
    return -1;
}

/* grammar.rawtext_end(name): the first "</name" + delimiter at or after p, or -1. */
static Py_ssize_t
rawtext_end(const unsigned char *d, Py_ssize_t p, Py_ssize_t n, const char *name)
{
    size_t len = strlen(name);
    while (p < n) {
        const unsigned char *lt = memchr(d + p, '<', (size_t)(n - p));
        if (lt == NULL)
            return -1;
        Py_ssize_t i = lt - d;
        if (i + 1 < n && d[i + 1] == '/' && starts_ci(d, i + 2, n, name, len) &&
            delim_at(d, i + 2 + (Py_ssize_t)len, n))
            return i;
        p = i + 1;
    }
    return -1;
}

/*
 * StreamRewriter._script_end for an HTML script: the offset of the "</script" that ends
 * the script data starting at p, or -1 if the buffer does not hold it. Follows the
 * escaped / double-escaped states (grammar.SCRIPT_EVENT and friends).
 */
enum { ESC_NONE, ESC_ESCAPED, ESC_DOUBLE }; /* stream._ESC_NONE, _ESC, _ESC_DOUBLE */

/*
 * StreamRewriter._script_end for an HTML script: the offset of the "</script" that ends
 * the script data at p, or -1 if the buffer does not hold it. Follows the escaped /
 * double-escaped states (grammar.SCRIPT_EVENT and friends) from *esc; when not found,
 * *esc and *resume are where the search of the current state began (the Python
 * function's ``-1 - pos``), so a caller can resume there with more input.
 */
static Py_ssize_t
script_end_from(const unsigned char *d, Py_ssize_t p, Py_ssize_t n, int *esc,
                Py_ssize_t *resume)
{
    for (;;) {
        *resume = p;
        if (*esc == ESC_NONE) { /* SCRIPT_EVENT: <!-- or </script+delim */
            Py_ssize_t i = p;
            for (;;) {
                const unsigned char *lt = i < n ? memchr(d + i, '<', (size_t)(n - i)) : NULL;
                if (lt == NULL)
                    return -1;
                i = lt - d;
                if (i + 3 < n && d[i + 1] == '!' && d[i + 2] == '-' && d[i + 3] == '-')
                    break;
                if (i + 1 < n && d[i + 1] == '/' && starts_ci(d, i + 2, n, "script", 6) &&
                    delim_at(d, i + 8, n))
                    return i;
                i++;
            }
            *esc = ESC_ESCAPED;
            p = i + 2; /* the dashes of <!-- count towards --> */
            continue;
        }
        /* ESC: "-->" | "<" "/"? "script" delim;  DOUBLE: "-->" | "</script" delim */
        Py_ssize_t i = p;
        for (; i < n; i++) {
            unsigned char c = d[i];
            if (c == '-') {
                if (i + 2 < n && d[i + 1] == '-' && d[i + 2] == '>')
                    break;
            }
            else if (c == '<') {
                int slash = i + 1 < n && d[i + 1] == '/';
                if (*esc == ESC_DOUBLE && !slash)
                    continue;
                if (starts_ci(d, i + 1 + slash, n, "script", 6) &&
                    delim_at(d, i + 7 + slash, n))
                    break;
            }
        }
        if (i >= n)
            return -1;
        if (d[i] == '-') { /* --> back to script data */
            *esc = ESC_NONE;
            p = i + 3;
        }
        else if (*esc == ESC_ESCAPED) {
            if (d[i + 1] == '/')
                return i;
            *esc = ESC_DOUBLE;
            p = i + 8; /* after "<script" and its delimiter */
        }
        else {
            *esc = ESC_ESCAPED;
            p = i + 9; /* after "</script" and its delimiter */
        }
    }
}

/* script_end_from in script data from the start. */
static Py_ssize_t
script_end(const unsigned char *d, Py_ssize_t p, Py_ssize_t n)
{
    int esc = ESC_NONE;
    Py_ssize_t resume;
    return script_end_from(d, p, n, &esc, &resume);
}

/* _speedups.script_end(data, pos, esc) -> (end or -1 - resume, esc): the C version of
 * StreamRewriter._script_end for an HTML script (the held-script path in Python). */
static PyObject *
py_script_end(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "script_end(data: bytes, pos: int, esc: int)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long esc = PyLong_AsLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    if (pos < 0 || pos > n || esc < ESC_NONE || esc > ESC_DOUBLE) {
        PyErr_SetString(PyExc_ValueError, "script_end(): argument out of range");
        return NULL;
    }
    int state = (int)esc;
    Py_ssize_t resume;
    Py_ssize_t end = script_end_from((const unsigned char *)PyBytes_AS_STRING(args[0]), pos,
                                     n, &state, &resume);
    return Py_BuildValue("(ni)", end >= 0 ? end : -1 - resume, state);
}

/* ---- the hint pre-check ------------------------------------------------------------ */

/*
 * A set of literal words searched for at once. RewritePolicy.element_hint is one,
 * searched in the lower-cased tag (fold): the catalog's hint words, "&#", "\\",
 * "data-consent", "data-cookieconsent". The catalog's inline-script anchors are another,
 * case-sensitive. Words are bucketed by their first byte; a bitmap of first-two-byte
 * pairs rejects most positions with one lookup.
 */
typedef struct {
    Py_ssize_t nwords;
    unsigned char **words; /* lower-case bytes */
    Py_ssize_t *lens;
    Py_ssize_t *next;      /* next word with the same first byte, or -1 */
    Py_ssize_t *order;     /* the word's index in the sequence given */
    Py_ssize_t head[256];  /* first word starting with the byte, or -1 */
    unsigned char pair[65536 / 8];
    int always;            /* an empty word matches everywhere */
    int fold;              /* compare ASCII case-insensitively (words are lower case) */
} Hint;

static void
hint_free(Hint *h)
{
    for (Py_ssize_t k = 0; k < h->nwords; k++)
        PyMem_Free(h->words[k]);
    PyMem_Free(h->words);
    PyMem_Free(h->lens);
    PyMem_Free(h->next);
    PyMem_Free(h->order);
    h->order = NULL;
    h->words = NULL;
    h->lens = NULL;
    h->next = NULL;
    h->nwords = 0;
}

static int
hint_init(Hint *h, PyObject *seq, int fold)
{
    PyObject *fast = PySequence_Fast(seq, "hint words must be a sequence of bytes");
    if (fast == NULL)
        return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    memset(h->pair, 0, sizeof h->pair);
    for (int c = 0; c < 256; c++)
        h->head[c] = -1;
    h->always = 0;
    h->fold = fold;
    h->nwords = 0;
    h->words = PyMem_Calloc((size_t)count + 1, sizeof(unsigned char *));
    h->lens = PyMem_Calloc((size_t)count + 1, sizeof(Py_ssize_t));
    h->next = PyMem_Calloc((size_t)count + 1, sizeof(Py_ssize_t));
    h->order = PyMem_Calloc((size_t)count + 1, sizeof(Py_ssize_t));
    if (h->words == NULL || h->lens == NULL || h->next == NULL || h->order == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *w = PySequence_Fast_GET_ITEM(fast, k);
        char *buf;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(w, &buf, &len) < 0) {
            Py_DECREF(fast);
            return -1;
        }
        if (len == 0) {
            h->always = 1;
            continue;
        }
        int upper = 0;
        for (Py_ssize_t j = 0; j < len; j++)
            upper |= buf[j] >= 'A' && buf[j] <= 'Z';
        if (upper && fold)
            continue; /* searched in the lower-cased tag, it can never match */
        unsigned char *copy = PyMem_Malloc((size_t)len);
        if (copy == NULL) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, buf, (size_t)len);
        Py_ssize_t id = h->nwords++;
        h->words[id] = copy;
        h->lens[id] = len;
        h->order[id] = k;
        h->next[id] = h->head[copy[0]];
        h->head[copy[0]] = id;
        if (len >= 2) {
            unsigned int key = (unsigned int)copy[0] << 8 | copy[1];
            h->pair[key >> 3] |= (unsigned char)(1u << (key & 7));
        }
        else { /* one-byte word: every pair starting with it */
            for (unsigned int c = 0; c < 256; c++) {
                unsigned int key = (unsigned int)copy[0] << 8 | c;
                h->pair[key >> 3] |= (unsigned char)(1u << (key & 7));
            }
        }
    }
    Py_DECREF(fast);
    return 0;
}

/* Does one of the words start at d[i] (within d[:e])? */
static int
words_at(const Hint *h, const unsigned char *map, const unsigned char *d, Py_ssize_t i,
         Py_ssize_t e)
{
    for (Py_ssize_t k = h->head[map[d[i]]]; k >= 0; k = h->next[k]) {
        Py_ssize_t len = h->lens[k];
        if (e - i < len)
            continue;
        Py_ssize_t j = 1;
        while (j < len && map[d[i + j]] == h->words[k][j])
            j++;
        if (j == len)
            return 1;
    }
    return 0;
}

/*
 * The pair-bitmap loop: each byte is loaded once, carried over as the first byte of the
 * next pair. MAP(c) is LOWER[c] or c (two copies of the loop, no table lookup when case
 * matters).
 */
#define HINT_LOOP(MAP)                                                                     \
    do {                                                                                   \
        unsigned int c0 = MAP(d[p]);                                                       \
        for (Py_ssize_t i = p; i < last; i++) {                                            \
            unsigned int c1 = MAP(d[i + 1]);                                               \
            unsigned int key = c0 << 8 | c1;                                               \
            c0 = c1;                                                                       \
            if ((pair[key >> 3] & (1u << (key & 7))) && words_at(h, map, d, i, e))         \
                return 1;                                                                  \
        }                                                                                  \
    } while (0)
#define FOLD(c) LOWER[c]
#define SAME(c) (c)

/* Does d[p:e] (lower-cased if h->fold) contain one of the words? */
static int
hint_search(const Hint *h, const unsigned char *d, Py_ssize_t p, Py_ssize_t e)
{
    if (h->always)
        return 1;
    if (p >= e)
        return 0;
    const unsigned char *map = h->fold ? LOWER : IDENTITY;
    const unsigned char *pair = h->pair;
    const Py_ssize_t last = e - 1;
    if (h->fold)
        HINT_LOOP(FOLD);
    else
        HINT_LOOP(SAME);
    /* the last byte: only a one-byte word can start there */
    return h->head[map[d[last]]] >= 0 && words_at(h, map, d, last, e);
}

/* ---- element names ----------------------------------------------------------------- */

#define NAME_MAX_LEN 31

/* The ASCII lower-case tag name d[s:e] into buf (NUL-terminated); 0 if it is too long
 * to be any name this module knows. */
static int
lower_name(const unsigned char *d, Py_ssize_t s, Py_ssize_t e, char *buf)
{
    if (e - s > NAME_MAX_LEN)
        return 0;
    for (Py_ssize_t j = s; j < e; j++)
        buf[j - s] = (char)LOWER[d[j]];
    buf[e - s] = 0;
    return 1;
}

static int
in_list(const char *name, const char *const *list)
{
    for (; *list != NULL; list++)
        if ((*list)[0] == name[0] && strcmp(name, *list) == 0)
            return 1;
    return 0;
}

/* elements.URL_ATTRS: the attributes holding a URL that loads something, per element. */
static const struct {
    const char *element;
    const char *attrs[6];
} URL_ATTRS[] = {
    {"script", {"src", "href", "xlink:href", "data-src", "data-lazy-src", NULL}},
    {"iframe", {"src", "srcdoc", "data-src", "data-lazy-src", "csp", NULL}},
    {"frame", {"src", NULL}},
    {"embed", {"src", NULL}},
    {"object", {"data", NULL}},
    {"img", {"src", "srcset", "data-src", "data-lazy-src", "data-srcset", NULL}},
    {"image", {"src", "srcset", "href", "xlink:href", "data-src", NULL}},
    {"source", {"src", "srcset", "data-src", "data-srcset", NULL}},
    {"video", {"src", "poster", NULL}},
    {"audio", {"src", NULL}},
    {"input", {"src", NULL}},
    {"track", {"src", NULL}},
    {"body", {"background", NULL}},
    {"table", {"background", NULL}},
    {"td", {"background", NULL}},
    {"th", {"background", NULL}},
    {"feimage", {"href", "xlink:href", NULL}},
    {"link", {"href", "imagesrcset", NULL}},
    {"base", {"href", NULL}},
    {"meta", {"content", NULL}},
    {NULL, {NULL}},
};

static const char *const *
url_attrs_of(const char *element)
{
    for (int k = 0; URL_ATTRS[k].element != NULL; k++)
        if (strcmp(URL_ATTRS[k].element, element) == 0)
            return URL_ATTRS[k].attrs;
    return NULL;
}

/* grammar.FOREIGN_BREAKOUT: start tags that leave SVG/MathML content. */
static const char *const FOREIGN_BREAKOUT[] = {
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt",
    "em", "embed", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li",
    "listing", "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span",
    "strong", "strike", "sub", "sup", "table", "tt", "u", "ul", "var", NULL,
};


/* What a start tag in HTML content is to the rewriter (_tags.TagHandling._start_tag). */
enum {
    H_SCRIPT = 1,
    H_RAWTEXT = 2,  /* _RAWTEXT_NAMES */
    H_URL = 4,      /* elements.URL_ATTRS */
    H_SVG = 8,
    H_NOSCRIPT = 16,
    H_PYTHON = 32,  /* math, plaintext: left to Python */
};

static const struct {
    const char *name;
    int flags;
} HTML_NAMES[] = {
    {"img", H_URL},         {"svg", H_SVG},          {"xmp", H_RAWTEXT},
    {"link", H_URL},        {"math", H_PYTHON},      {"style", H_RAWTEXT},
    {"title", H_RAWTEXT},   {"embed", H_URL},        {"frame", H_URL},
    {"image", H_URL},       {"script", H_SCRIPT | H_URL},
    {"iframe", H_URL | H_RAWTEXT},                   {"object", H_URL},
    {"source", H_URL},      {"noembed", H_RAWTEXT},  {"textarea", H_RAWTEXT},
    {"noframes", H_RAWTEXT}, {"noscript", H_NOSCRIPT}, {"plaintext", H_PYTHON},
    {"base", H_URL},        {"meta", H_URL},         {"video", H_URL},
    {"audio", H_URL},       {"input", H_URL},        {"track", H_URL},
    {"body", H_URL},        {"table", H_URL},        {"td", H_URL},
    {"th", H_URL},          {"feimage", H_URL},
    /* MathML in a MathML text integration point (mi, mo, ...): Python knows the stack */
    {"mglyph", H_PYTHON},   {"malignmark", H_PYTHON},
    {NULL, 0},
};

/* The HTML_NAMES flags of a lower-case tag name (0: nothing happens at it). */
static int
html_flags(const char *name, Py_ssize_t len)
{
    if (len < 2 || len > 10)
        return 0;
    for (int k = 0; HTML_NAMES[k].name != NULL; k++) {
        const char *n = HTML_NAMES[k].name;
        if (n[0] == name[0] && n[1] == name[1] && strcmp(n, name) == 0)
            return HTML_NAMES[k].flags;
    }
    return 0;
}

/* ---- the scanner object ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *granted;     /* frozenset[str]: RewritePolicy.granted */
    PyObject *js_types;    /* frozenset[bytes]: policy.JS_TYPES */
    PyObject *rank;        /* dict[str, int]: catalog.CATEGORY_RANK */
    PyObject *script_url;  /* (url: bytes) -> str | None, for a script's URL */
    PyObject *element_url; /* (url: bytes) -> str | None, for another element's URL */
    PyObject *inline_cat;  /* (text: bytes) -> str | None */
    Hint hint;             /* element_hint */
    Hint anchors;          /* Catalog.inline_anchors: no anchor, no inline category */
} Scanner;

/* One run over a buffer: the state shared by the helpers below. */
typedef struct {
    Scanner *sc;
    PyObject *data;        /* the bytes scanned */
    PyObject *view;        /* memoryview(data) once text before an edit is output */
    const unsigned char *d;
    Py_ssize_t n;
    Py_ssize_t emit;       /* StreamRewriter._emit */
    PyObject *out;         /* list[bytes]: StreamRewriter._out */
    PyObject *stats;       /* Counter[str] */
    PyObject *edits;       /* list or None */
    Py_ssize_t base;       /* StreamRewriter._base */
    Py_ssize_t tag_cap, script_cap;
} Run;

/*
 * Where the tokenizer is, for step(): HTML content at the top level, or inside an SVG
 * element run as one unit (its own stack of svg elements and HTML integration points,
 * _tags.TagHandling's _stack), or the <noscript> check (tokenize only).
 */
#define MAX_DEPTH 256
enum { E_SVG, E_FOREIGNOBJECT, E_DESC, E_TITLE };
static const char *const ENTRY_NAME[] = {"svg", "foreignobject", "desc", "title", NULL};

typedef struct {
    int check; /* the noscript views check: tokenize only, no decisions, no svg */
    int depth;
    unsigned char stack[MAX_DEPTH];
} Ctx;

#define FOREIGN(cx) ((cx)->depth > 0 && (cx)->stack[(cx)->depth - 1] == E_SVG)

static int
Scanner_traverse(Scanner *self, visitproc visit, void *arg)
{
    Py_VISIT(self->granted);
    Py_VISIT(self->js_types);
    Py_VISIT(self->rank);
    Py_VISIT(self->script_url);
    Py_VISIT(self->element_url);
    Py_VISIT(self->inline_cat);
    return 0;
}

static int
Scanner_clear(Scanner *self)
{
    Py_CLEAR(self->granted);
    Py_CLEAR(self->js_types);
    Py_CLEAR(self->rank);
    Py_CLEAR(self->script_url);
    Py_CLEAR(self->element_url);
    Py_CLEAR(self->inline_cat);
    return 0;
}

static void
Scanner_dealloc(Scanner *self)
{
    PyObject_GC_UnTrack(self);
    Scanner_clear(self);
    hint_free(&self->hint);
    hint_free(&self->anchors);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Scanner_init(Scanner *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"granted",    "js_types",    "category_rank",   "hint_words",
                             "anchors",    "script_url",  "element_url",     "inline_category",
                             NULL};
    PyObject *granted, *js_types, *rank, *words, *anchors, *script_url, *element_url,
        *inline_cat;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!OOOOO", kwlist, &PyFrozenSet_Type,
                                     &granted, &PyFrozenSet_Type, &js_types, &PyDict_Type,
                                     &rank, &words, &anchors, &script_url, &element_url,
                                     &inline_cat))
        return -1;
    if (!PyCallable_Check(script_url) || !PyCallable_Check(element_url) ||
        !PyCallable_Check(inline_cat)) {
        PyErr_SetString(PyExc_TypeError, "the classifiers must be callable");
        return -1;
    }
    hint_free(&self->hint);
    hint_free(&self->anchors);
    if (hint_init(&self->hint, words, 1) < 0 || hint_init(&self->anchors, anchors, 0) < 0)
        return -1;
    Py_INCREF(granted);
    Py_XSETREF(self->granted, granted);
    Py_INCREF(js_types);
    Py_XSETREF(self->js_types, js_types);
    Py_INCREF(rank);
    Py_XSETREF(self->rank, rank);
    Py_INCREF(script_url);
    Py_XSETREF(self->script_url, script_url);
    Py_INCREF(element_url);
    Py_XSETREF(self->element_url, element_url);
    Py_INCREF(inline_cat);
    Py_XSETREF(self->inline_cat, inline_cat);
    return 0;
}

/* ---- edits ------------------------------------------------------------------------- */

/* StreamRewriter._edit: replace d[start:end] by `replacement` (a new reference, stolen). */
static int
run_edit(Run *r, Py_ssize_t start, Py_ssize_t end, PyObject *replacement)
{
    if (r->edits != Py_None) {
        PyObject *t = Py_BuildValue("(nnO)", r->base + start, r->base + end, replacement);
        if (t == NULL || PyList_Append(r->edits, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(replacement);
            return -1;
        }
        Py_DECREF(t);
    }
    if (start > r->emit) { /* the text before: a view, copied once by the final join */
        if (r->view == NULL && (r->view = PyMemoryView_FromObject(r->data)) == NULL) {
            Py_DECREF(replacement);
            return -1;
        }
        PyObject *text = PySequence_GetSlice(r->view, r->emit, start);
        if (text == NULL || PyList_Append(r->out, text) < 0) {
            Py_XDECREF(text);
            Py_DECREF(replacement);
            return -1;
        }
        Py_DECREF(text);
    }
    int rc = PyList_Append(r->out, replacement);
    Py_DECREF(replacement);
    if (rc < 0)
        return -1;
    r->emit = end;
    return 0;
}

/* stats[category] += 1 */
static int
count(Run *r, PyObject *category)
{
    PyObject *old = PyDict_GetItemWithError(r->stats, category); /* borrowed */
    if (old == NULL && PyErr_Occurred())
        return -1;
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL)
        return -1;
    PyObject *value = old == NULL ? (Py_INCREF(one), one) : PyNumber_Add(old, one);
    Py_DECREF(one);
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(r->stats, category, value);
    Py_DECREF(value);
    return rc;
}

/*
 * elements.neutralize: the start tag d[p:e] of `element` (its name ends at name_end) made
 * inert for `category`. A script gets type="text/plain" data-consent="..." inserted
 * after the name and its type / non-src URL attributes renamed; another element gets
 * data-consent="..." and its URL attributes renamed data-consentgate-<name>.
 */
static PyObject *
neutralize(const unsigned char *d, Py_ssize_t p, Py_ssize_t name_end, Py_ssize_t e,
           const AttrVec *attrs, const char *element, PyObject *category)
{
    static const char *const script_renames[] = {"type", "href", "xlink:href", "data-src",
                                                 "data-lazy-src", NULL};
    static const char prefix[] = "data-consentgate-";
    const Py_ssize_t plen = (Py_ssize_t)sizeof prefix - 1;
    int script = strcmp(element, "script") == 0;
    const char *const *renames = script ? script_renames : url_attrs_of(element);
    const char *insert = script ? " type=\"text/plain\" data-consent=\"" : " data-consent=\"";
    const Py_ssize_t ilen = (Py_ssize_t)strlen(insert);
    Py_ssize_t clen;
    const char *cat = PyUnicode_AsUTF8AndSize(category, &clen);
    if (cat == NULL)
        return NULL;

    /* which attributes are renamed (by their lower-case name) */
    unsigned char small[64];
    unsigned char *renamed = attrs->len <= 64 ? small : PyMem_Malloc((size_t)attrs->len);
    if (renamed == NULL)
        return PyErr_NoMemory();
    Py_ssize_t size = (e - p) + ilen + clen + 1;
    for (Py_ssize_t k = 0; k < attrs->len; k++) {
        const Attr *a = &attrs->items[k];
        char name[NAME_MAX_LEN + 1];
        renamed[k] = renames != NULL && lower_name(d, a->start, a->end, name) &&
                     in_list(name, renames);
        if (renamed[k])
            size += plen;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, size);
    if (result != NULL) {
        char *w = PyBytes_AS_STRING(result);
        memcpy(w, d + p, (size_t)(name_end - p));
        w += name_end - p;
        memcpy(w, insert, (size_t)ilen);
        w += ilen;
        memcpy(w, cat, (size_t)clen);
        w += clen;
        *w++ = '"';
        Py_ssize_t pos = name_end;
        for (Py_ssize_t k = 0; k < attrs->len; k++) {
            if (!renamed[k])
                continue;
            const Attr *a = &attrs->items[k];
            memcpy(w, d + pos, (size_t)(a->start - pos));
            w += a->start - pos;
            memcpy(w, prefix, (size_t)plen);
            w += plen;
            for (Py_ssize_t j = a->start; j < a->end; j++) {
                unsigned char c = LOWER[d[j]];
                *w++ = (char)(c == ':' ? '-' : c);
            }
            pos = a->end;
        }
        memcpy(w, d + pos, (size_t)(e - pos));
        w += e - pos;
        assert(w == PyBytes_AS_STRING(result) + size);
    }
    if (renamed != small)
        PyMem_Free(renamed);
    return result;
}

/*
 * A category decided for the element d[p:e]: neutralize it unless the visitor allows
 * the category (RewritePolicy.allows). `category` is borrowed. 0 or -1 (error).
 */
static int
apply_category(Run *r, Py_ssize_t p, Py_ssize_t name_end, Py_ssize_t e, const AttrVec *attrs,
               const char *element, PyObject *category)
{
    if (category == Py_None)
        return 0;
    if (!PyUnicode_Check(category)) {
        PyErr_SetString(PyExc_TypeError, "a category must be a str or None");
        return -1;
    }
    if (PyUnicode_CompareWithASCIIString(category, "necessary") == 0)
        return 0;
    int allowed = PySet_Contains(r->sc->granted, category);
    if (allowed != 0)
        return allowed < 0 ? -1 : 0;
    PyObject *tag = neutralize(r->d, p, name_end, e, attrs, element, category);
    if (tag == NULL || run_edit(r, p, e, tag) < 0)
        return -1;
    return count(r, category);
}

/* ---- decisions --------------------------------------------------------------------- */

/* The first value of attribute `name` if it is present and not empty (attrs.get(name)). */
static const Attr *
nonempty(const unsigned char *d, const AttrVec *attrs, const char *name)
{
    const Attr *a = attr_get(d, attrs, name);
    return a != NULL && a->vstart >= 0 && a->vstop > a->vstart ? a : NULL;
}

/* policy.script_is_executable on the first values of the attributes. -1: error. */
static int
script_is_executable(Run *r, const AttrVec *attrs)
{
    const unsigned char *d = r->d;
    const Attr *type = attr_get(d, attrs, "type");
    Py_ssize_t s = 0, e = 0;
    const char *prefix = "";
    if (type != NULL && type->vstart >= 0) {
        s = type->vstart;
        e = type->vstop;
    }
    while (s < e && IS_WS(d[s]))
        s++;
    while (e > s && IS_WS(d[e - 1]))
        e--;
    if (s == e) { /* no type, or a blank one */
        const Attr *lang = nonempty(d, attrs, "language");
        if (type != NULL || lang == NULL)
            return 1;
        s = lang->vstart;
        e = lang->vstop;
        while (s < e && IS_WS(d[s]))
            s++;
        while (e > s && IS_WS(d[e - 1]))
            e--;
        prefix = "text/";
    }
    Py_ssize_t plen = (Py_ssize_t)strlen(prefix);
    PyObject *kind = PyBytes_FromStringAndSize(NULL, plen + (e - s));
    if (kind == NULL)
        return -1;
    char *w = PyBytes_AS_STRING(kind);
    memcpy(w, prefix, (size_t)plen);
    for (Py_ssize_t j = s; j < e; j++)
        w[plen + j - s] = (char)LOWER[d[j]];
    int found = PySet_Contains(r->sc->js_types, kind);
    Py_DECREF(kind);
    return found;
}

/*
 * Returned by the construct handlers instead of a new position: BAIL (the construct is
 * left to Python), INCOMPLETE (it does not end inside the buffer: Python may wait for
 * more input, or handle it), ERROR (a Python exception is set).
 */
#define BAIL (-1)
#define ERROR (-2)
#define INCOMPLETE (-3)

/* Element-level overrides (data-consent, data-cookieconsent) are left to Python. */
static int
has_override(const unsigned char *d, const AttrVec *attrs)
{
    return attr_get(d, attrs, "data-consent") || attr_get(d, attrs, "data-cookieconsent");
}

/*
 * A <script> start tag d[p:e] in HTML content (TagHandling._script_start, then
 * _script_body / _decide_script). Returns the offset of its "</script", BAIL or ERROR.
 */
static Py_ssize_t
handle_script(Run *r, Py_ssize_t p, Py_ssize_t name_end, Py_ssize_t e)
{
    static const char *const url_attrs[] = {"src", "href", "xlink:href", "data-src",
                                            "data-lazy-src", NULL};
    const unsigned char *d = r->d;
    AttrVec attrs;
    attrs_init(&attrs);
    Py_ssize_t ns, ne, result = ERROR;
    PyObject *category = NULL;
    if (match_tag(d, p, r->n, &ns, &ne, &attrs) != e)
        goto done;
    if (has_override(d, &attrs)) {
        result = BAIL;
        goto done;
    }
    int executable = script_is_executable(r, &attrs);
    if (executable < 0)
        goto done;
    Py_ssize_t body_end = script_end(d, e, r->n);
    if (body_end < 0) {
        result = INCOMPLETE; /* the script continues past this buffer */
        goto done;
    }
    if (executable) {
        const Attr *url = NULL;
        for (int j = 0; url_attrs[j] != NULL && url == NULL; j++)
            url = nonempty(d, &attrs, url_attrs[j]);
        if (url == NULL && body_end - e > r->script_cap) {
            result = BAIL; /* too long to classify whole: the Python path decides */
            goto done;
        }
        if (url == NULL && !hint_search(&r->sc->anchors, d, e, body_end)) {
            result = body_end; /* Catalog.match_inline finds nothing without an anchor */
            goto done;
        }
        PyObject *arg =
            url != NULL
                ? PyBytes_FromStringAndSize((const char *)d + url->vstart,
                                            url->vstop - url->vstart)
                : PyBytes_FromStringAndSize((const char *)d + e, body_end - e);
        if (arg == NULL)
            goto done;
        category = PyObject_CallOneArg(url != NULL ? r->sc->script_url : r->sc->inline_cat,
                                       arg);
        Py_DECREF(arg);
        if (category == NULL ||
            apply_category(r, p, name_end, e, &attrs, "script", category) < 0)
            goto done;
    }
    result = body_end;
done:
    Py_XDECREF(category);
    attrs_free(&attrs);
    return result;
}

/* _tags._PRELOAD: does a rel value hold preload, modulepreload or prefetch? 1: yes;
 * 2: no, but a resource hint (_tags._HINT: preconnect, dns-prefetch); 0: neither. */
static int
rel_preloads(const unsigned char *d, const Attr *rel)
{
    if (rel == NULL || rel->vstart < 0)
        return 0;
    Py_ssize_t i = rel->vstart, e = rel->vstop;
    int hint = 0;
    while (i < e) {
        while (i < e && IS_WS(d[i]))
            i++;
        Py_ssize_t s = i;
        while (i < e && !IS_WS(d[i]))
            i++;
        char word[NAME_MAX_LEN + 1];
        if (i > s && lower_name(d, s, i, word) &&
            (!strcmp(word, "preload") || !strcmp(word, "modulepreload") ||
             !strcmp(word, "prefetch")))
            return 1;
        if (i > s && lower_name(d, s, i, word) &&
            (!strcmp(word, "preconnect") || !strcmp(word, "dns-prefetch")))
            hint = 2;
    }
    return hint;
}

/* bytes.split() whitespace: the URL candidates of a srcset end at these. */
#define PY_SPACE(c) ((c) == ' ' || ((c) >= '\t' && (c) <= '\r'))

/*
 * Classify one URL d[s:e] with the element callback and keep the strictest category
 * (RewritePolicy.strictest) in *best (a new reference or NULL). -1: error.
 */
static int
classify_url(Run *r, Py_ssize_t s, Py_ssize_t e, PyObject **best, long *best_rank)
{
    PyObject *url = PyBytes_FromStringAndSize((const char *)r->d + s, e - s);
    if (url == NULL)
        return -1;
    PyObject *category = PyObject_CallOneArg(r->sc->element_url, url);
    Py_DECREF(url);
    if (category == NULL)
        return -1;
    if (category == Py_None) {
        Py_DECREF(category);
        return 0;
    }
    PyObject *rank = PyDict_GetItemWithError(r->sc->rank, category); /* borrowed */
    if (rank == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, category);
        Py_DECREF(category);
        return -1;
    }
    long value = PyLong_AsLong(rank);
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(category);
        return -1;
    }
    if (*best == NULL || value > *best_rank) {
        Py_XSETREF(*best, category);
        *best_rank = value;
    }
    else {
        Py_DECREF(category);
    }
    return 0;
}

/*
 * A URL-bearing start tag d[p:e] whose tag holds a hint word (TagHandling._url_element
 * after the element_hint pre-check). Returns e or BAIL / ERROR.
 */
static Py_ssize_t
handle_url(Run *r, Py_ssize_t p, Py_ssize_t name_end, Py_ssize_t e, const char *element)
{
    const unsigned char *d = r->d;
    AttrVec attrs;
    attrs_init(&attrs);
    Py_ssize_t ns, ne, result = ERROR;
    PyObject *best = NULL;
    long best_rank = 0;
    if (match_tag(d, p, r->n, &ns, &ne, &attrs) != e)
        goto done;
    if (has_override(d, &attrs)) {
        result = BAIL;
        goto done;
    }
    if (strcmp(element, "base") == 0 || strcmp(element, "meta") == 0
        || strcmp(element, "iframe") == 0 || strcmp(element, "frame") == 0
        || strcmp(element, "object") == 0 || strcmp(element, "embed") == 0) {
        /* base: classified by host (Catalog.hint_category), like a resource hint;
         * meta: a refresh's URL is inside its content;
         * frames, objects, embeds: a srcdoc is markup (Catalog.code_category), a data:
         * document or a sandboxed srcdoc is opaque (_tags.data_document): Python */
        result = BAIL;
        goto done;
    }
    if (strcmp(element, "link") == 0) {
        int rel = rel_preloads(d, attr_get(d, &attrs, "rel"));
        if (rel != 1) {
            /* a resource hint is classified by host (Catalog.hint_category): Python */
            result = rel == 2 ? BAIL : e;
            goto done;
        }
    }
    const char *const *names = url_attrs_of(element);
    for (int j = 0; names[j] != NULL; j++) {
        const Attr *a = nonempty(d, &attrs, names[j]);
        if (a == NULL)
            continue;
        size_t len = strlen(names[j]);
        int srcset = len >= 6 && strcmp(names[j] + len - 6, "srcset") == 0;
        if (!srcset) {
            if (classify_url(r, a->vstart, a->vstop, &best, &best_rank) < 0)
                goto done;
            continue;
        }
        /* _tags._candidates: the first word of each comma-separated part */
        Py_ssize_t i = a->vstart;
        while (i <= a->vstop) {
            const unsigned char *comma = memchr(d + i, ',', (size_t)(a->vstop - i));
            Py_ssize_t part_end = comma == NULL ? a->vstop : comma - d;
            Py_ssize_t s = i;
            while (s < part_end && PY_SPACE(d[s]))
                s++;
            Py_ssize_t w = s;
            while (w < part_end && !PY_SPACE(d[w]))
                w++;
            if (w > s && classify_url(r, s, w, &best, &best_rank) < 0)
                goto done;
            i = part_end + 1;
        }
    }
    if (best != NULL && apply_category(r, p, name_end, e, &attrs, element, best) < 0)
        goto done;
    result = e;
done:
    Py_XDECREF(best);
    attrs_free(&attrs);
    return result;
}

/* ---- the tokenizer ------------------------------------------------------------------ */

static Py_ssize_t step(Run *r, Ctx *cx, Py_ssize_t pos, Py_ssize_t n);

/* Run step() from p until the context's stack is empty (an SVG element) or up to n (the
 * noscript check); any construct left to Python fails the whole unit with BAIL. */
static Py_ssize_t
run_unit(Run *r, Ctx *cx, Py_ssize_t p, Py_ssize_t n)
{
    while (cx->check ? p < n : cx->depth > 0) {
        const unsigned char *lt = p < n ? memchr(r->d + p, '<', (size_t)(n - p)) : NULL;
        if (lt == NULL) {
            if (cx->check)
                return n;
            return INCOMPLETE;
        }
        Py_ssize_t next = step(r, cx, lt - r->d, n);
        if (next < 0)
            return next;
        p = next;
    }
    return p;
}

/*
 * <noscript> with scripting views (TagHandling._noscript_views): the markup view and the
 * raw-text view agree when its content up to the first "</noscript" (within 64 KiB)
 * tokenizes completely and ends in the data state. Then the noscript is an ordinary
 * start tag; otherwise Python decides.
 */
#define NOSCRIPT_LOOKAHEAD (64 * 1024)

static Py_ssize_t
handle_noscript(Run *r, Py_ssize_t e)
{
    Py_ssize_t limit = r->n - e > NOSCRIPT_LOOKAHEAD ? e + NOSCRIPT_LOOKAHEAD : r->n;
    Py_ssize_t raw_end = rawtext_end(r->d, e, limit, "noscript");
    if (raw_end < 0)
        return limit == r->n ? INCOMPLETE : BAIL;
    Ctx cx;
    cx.check = 1;
    cx.depth = 0;
    Py_ssize_t end = run_unit(r, &cx, e, raw_end);
    /* within the content, anything incomplete means the views part */
    return end == raw_end ? e : end == ERROR ? ERROR : BAIL;
}

/* _tags._self_closing for the start tag d[p:e]: "/>" not owned by an unquoted value. */
static int
self_closing(const unsigned char *d, Py_ssize_t p, Py_ssize_t e)
{
    if (d[e - 2] != '/')
        return 0;
    AttrVec attrs;
    attrs_init(&attrs);
    Py_ssize_t ns, ne;
    if (match_tag(d, p, e, &ns, &ne, &attrs) != e) {
        attrs_free(&attrs);
        return -1;
    }
    int sc = 1;
    if (attrs.len > 0) {
        const Attr *last = &attrs.items[attrs.len - 1];
        if (last->value_end == e - 1 && !last->quoted)
            sc = 0;
    }
    attrs_free(&attrs);
    return sc;
}

/* The end of a comment / bogus comment / "<!" construct at d[pos] == '<', '!' next;
 * BAIL when it does not end in the buffer. */
static Py_ssize_t
markup_decl(const unsigned char *d, Py_ssize_t pos, Py_ssize_t n, int foreign)
{
    if (n - pos >= 4 && d[pos + 2] == '-' && d[pos + 3] == '-') { /* <!-- */
        if (n - pos < 6)
            return INCOMPLETE;
        if (d[pos + 4] == '>')
            return pos + 5;
        if (d[pos + 4] == '-' && d[pos + 5] == '>')
            return pos + 6;
        return comment_end(d, pos + 4, n);
    }
    if (foreign && (n - pos < 9 || memcmp(d + pos, "<![CDATA[", 9) == 0))
        return BAIL; /* CDATA sections (or maybe one) in SVG: Python */
    /* doctype, bogus comment (and <![CDATA[ in HTML content) */
    const unsigned char *gt = memchr(d + pos + 2, '>', (size_t)(n - pos - 2));
    return gt == NULL ? INCOMPLETE : gt - d + 1;
}

/* An end tag d[pos:e] named d[ns:ne] (complete): TagHandling._end_name for the stack. */
static Py_ssize_t
end_tag(Ctx *cx, const unsigned char *d, Py_ssize_t ns, Py_ssize_t ne, Py_ssize_t e)
{
    if (cx->depth == 0)
        return e; /* nothing to do in HTML content at the top level */
    char name[NAME_MAX_LEN + 1];
    if (!lower_name(d, ns, ne, name))
        return e;
    if (FOREIGN(cx)) {
        if (!strcmp(name, "br") || !strcmp(name, "p"))
            return BAIL; /* leaves foreign content */
        for (int k = cx->depth - 1; k >= 0; k--) {
            if (!strcmp(ENTRY_NAME[cx->stack[k]], name)) {
                cx->depth = k;
                break;
            }
        }
    }
    else if (!strcmp(ENTRY_NAME[cx->stack[cx->depth - 1]], name)) {
        cx->depth--; /* the integration point ends */
    }
    return e;
}

/* Push a stack entry; BAIL beyond MAX_DEPTH (Python counts the overflow). */
static Py_ssize_t
push(Ctx *cx, int entry, Py_ssize_t e)
{
    if (cx->depth >= MAX_DEPTH)
        return BAIL;
    cx->stack[cx->depth++] = (unsigned char)entry;
    return e;
}

/* A complete start tag d[pos:e] named d[ns:ne] in SVG content (_tags._foreign_start). */
static Py_ssize_t
foreign_start(Run *r, Ctx *cx, Py_ssize_t pos, Py_ssize_t ns, Py_ssize_t ne, Py_ssize_t e)
{
    const unsigned char *d = r->d;
    char name[NAME_MAX_LEN + 1];
    if (!lower_name(d, ns, ne, name))
        return e;
    if (in_list(name, FOREIGN_BREAKOUT) || !strcmp(name, "font") ||
        !strcmp(name, "script") || !strcmp(name, "math"))
        return BAIL; /* leaves SVG, or SVG script, or MathML: Python */
    if (e - pos > r->tag_cap)
        return BAIL;
    int entry = !strcmp(name, "svg")             ? E_SVG
                : !strcmp(name, "foreignobject") ? E_FOREIGNOBJECT
                : !strcmp(name, "desc")          ? E_DESC
                : !strcmp(name, "title")         ? E_TITLE
                                                 : -1;
    if (entry >= 0) {
        int sc = self_closing(d, pos, e);
        if (sc < 0)
            return ERROR;
        return sc ? e : push(cx, entry, e);
    }
    if ((!strcmp(name, "image") || !strcmp(name, "feimage"))
        && hint_search(&r->sc->hint, d, pos, e))
        return BAIL;
    return e;
}

/* A complete start tag d[pos:e] named d[ns:ne] in HTML content (_tags._start_tag). */
static Py_ssize_t
html_start(Run *r, Ctx *cx, Py_ssize_t pos, Py_ssize_t ns, Py_ssize_t ne, Py_ssize_t e,
           Py_ssize_t n)
{
    const unsigned char *d = r->d;
    char name[NAME_MAX_LEN + 1];
    if (!lower_name(d, ns, ne, name))
        return e;
    const int flags = html_flags(name, ne - ns);
    if (flags == 0)
        return e; /* nothing happens at this start tag */
    const int top = cx->depth == 0 && !cx->check; /* edits allowed */
    const int script = flags & H_SCRIPT, rawtext = flags & H_RAWTEXT, svg = flags & H_SVG;
    const int urls = flags & H_URL;
    if (!cx->check && e - pos > r->tag_cap)
        return BAIL; /* the conservative treatment of an over-long tag: Python */
    if (flags & H_NOSCRIPT)
        return cx->check ? e : top ? handle_noscript(r, e) : BAIL;
    if (flags & H_PYTHON)
        return BAIL; /* math (MathML) and plaintext */
    if (svg) {
        if (cx->check)
            return BAIL;
        int sc = self_closing(d, pos, e);
        if (sc < 0)
            return ERROR;
        if (sc)
            return e;
        if (!top)
            return push(cx, E_SVG, e);
        Ctx unit;
        unit.check = 0;
        unit.depth = 1;
        unit.stack[0] = E_SVG;
        return run_unit(r, &unit, e, n);
    }
    if (script) {
        if (cx->check) {
            Py_ssize_t end = script_end(d, e, n);
            return end < 0 ? INCOMPLETE : end;
        }
        return top ? handle_script(r, pos, ne, e) : BAIL;
    }
    if (urls && !cx->check && hint_search(&r->sc->hint, d, pos, e)) {
        if (!top)
            return BAIL;
        Py_ssize_t next = e;
        if (rawtext) { /* iframe: find the end of its body first (all or nothing) */
            next = rawtext_end(d, e, n, name);
            if (next < 0)
                return INCOMPLETE;
        }
        Py_ssize_t done = handle_url(r, pos, ne, e, name);
        return done < 0 ? done : next;
    }
    if (!rawtext)
        return e;
    Py_ssize_t end = rawtext_end(d, e, n, name);
    return end < 0 ? INCOMPLETE : end;
}

/*
 * One construct at d[pos] == '<' in the context cx, within d[:n]: the offset just after
 * it (after a raw-text or script body), BAIL (nothing done for it) or ERROR.
 */
static Py_ssize_t
step(Run *r, Ctx *cx, Py_ssize_t pos, Py_ssize_t n)
{
    const unsigned char *d = r->d;
    if (pos + 1 >= n)
        return INCOMPLETE; /* '<' at the end: what it starts is not known yet */
    unsigned char c = d[pos + 1];
    if (c == '!')
        return markup_decl(d, pos, n, FOREIGN(cx));
    if (c == '?') { /* bogus comment */
        const unsigned char *gt = memchr(d + pos + 1, '>', (size_t)(n - pos - 1));
        return gt == NULL ? INCOMPLETE : gt - d + 1;
    }
    if (c == '/') {
        if (pos + 2 >= n)
            return INCOMPLETE;
        unsigned char c2 = d[pos + 2];
        if (c2 == '>')
            return pos + 3; /* </> is dropped by browsers */
        if (!IS_ALPHA(c2)) { /* bogus comment */
            const unsigned char *gt = memchr(d + pos + 2, '>', (size_t)(n - pos - 2));
            return gt == NULL ? INCOMPLETE : gt - d + 1;
        }
        Py_ssize_t ns, ne;
        Py_ssize_t e = match_tag(d, pos, n, &ns, &ne, NULL);
        if (e < 0)
            return INCOMPLETE;
        return end_tag(cx, d, ns, ne, e);
    }
    if (!IS_ALPHA(c))
        return pos + 1; /* a '<' that starts nothing is text */
    Py_ssize_t ns, ne;
    Py_ssize_t e = match_tag(d, pos, n, &ns, &ne, NULL);
    if (e < 0)
        return e == -2 ? ERROR : INCOMPLETE;
    if (FOREIGN(cx))
        return foreign_start(r, cx, pos, ns, ne, e);
    return html_start(r, cx, pos, ns, ne, e, n);
}

/*
 * Scanner.run(data, pos, emit, out, stats, edits, base, tag_cap, script_cap)
 *   -> (pos, emit, constructs, incomplete)
 *
 * Scans data[pos:] in the data state (see the top of this file) until the first
 * construct left to Python, or the end. `emit`, `out`, `edits`, `base` are the
 * rewriter's output state (StreamRewriter._edit); `constructs` counts the constructs
 * handled (added to StreamRewriter.steps); `incomplete`: the construct at `pos` may
 * just need more input (the caller may keep data[pos:] for the next feed).
 */
static PyObject *
Scanner_run(Scanner *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "run() takes 9 arguments");
        return NULL;
    }
    PyObject *data = args[0];
    if (!PyBytes_Check(data) || !PyList_Check(args[3]) || !PyDict_Check(args[4]) ||
        (args[5] != Py_None && !PyList_Check(args[5]))) {
        PyErr_SetString(PyExc_TypeError, "run(bytes, int, int, list, dict, list|None, ...)");
        return NULL;
    }
    Run r;
    r.sc = self;
    r.data = data;
    r.view = NULL;
    r.d = (const unsigned char *)PyBytes_AS_STRING(data);
    r.n = PyBytes_GET_SIZE(data);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    r.emit = PyLong_AsSsize_t(args[2]);
    r.out = args[3];
    r.stats = args[4];
    r.edits = args[5];
    r.base = PyLong_AsSsize_t(args[6]);
    r.tag_cap = PyLong_AsSsize_t(args[7]);
    r.script_cap = PyLong_AsSsize_t(args[8]);
    if (PyErr_Occurred())
        return NULL;
    if (pos < 0 || pos > r.n || r.emit < 0 || r.emit > pos) {
        PyErr_SetString(PyExc_ValueError, "run(): position out of range");
        return NULL;
    }
    Ctx top;
    top.check = 0;
    top.depth = 0;
    Py_ssize_t constructs = 0;
    int incomplete = 0;
    while (pos < r.n) {
        const unsigned char *lt = memchr(r.d + pos, '<', (size_t)(r.n - pos));
        if (lt == NULL) {
            pos = r.n;
            break;
        }
        pos = lt - r.d;
        Py_ssize_t next = step(&r, &top, pos, r.n);
        if (next == ERROR) {
            Py_XDECREF(r.view);
            return NULL;
        }
        if (next < 0) { /* left to Python, from this '<' on */
            incomplete = next == INCOMPLETE;
            break;
        }
        pos = next;
        constructs++;
    }
    Py_XDECREF(r.view);
    return Py_BuildValue("(nnni)", pos, r.emit, constructs, incomplete);
}

/* The C copies of Python tables, for a test that they agree. */
static PyObject *
tables(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    PyObject *url_attrs = PyDict_New(), *breakout = PySet_New(NULL);
    PyObject *rawtext = PySet_New(NULL), *url_elements = PySet_New(NULL);
    if (url_attrs == NULL || breakout == NULL || rawtext == NULL || url_elements == NULL)
        goto error;
    for (int k = 0; URL_ATTRS[k].element != NULL; k++) {
        PyObject *names = PySet_New(NULL);
        if (names == NULL)
            goto error;
        for (int j = 0; URL_ATTRS[k].attrs[j] != NULL; j++) {
            PyObject *b = PyBytes_FromString(URL_ATTRS[k].attrs[j]);
            if (b == NULL || PySet_Add(names, b) < 0) {
                Py_XDECREF(b);
                Py_DECREF(names);
                goto error;
            }
            Py_DECREF(b);
        }
        PyObject *key = PyBytes_FromString(URL_ATTRS[k].element);
        if (key == NULL || PyDict_SetItem(url_attrs, key, names) < 0) {
            Py_XDECREF(key);
            Py_DECREF(names);
            goto error;
        }
        Py_DECREF(key);
        Py_DECREF(names);
    }
    for (const char *const *w = FOREIGN_BREAKOUT; *w != NULL; w++) {
        PyObject *b = PyBytes_FromString(*w);
        if (b == NULL || PySet_Add(breakout, b) < 0) {
            Py_XDECREF(b);
            goto error;
        }
        Py_DECREF(b);
    }
    for (int k = 0; HTML_NAMES[k].name != NULL; k++) {
        PyObject *b = PyBytes_FromString(HTML_NAMES[k].name);
        int flags = HTML_NAMES[k].flags;
        if (b == NULL || (flags & H_RAWTEXT && PySet_Add(rawtext, b) < 0) ||
            (flags & H_URL && PySet_Add(url_elements, b) < 0)) {
            Py_XDECREF(b);
            goto error;
        }
        Py_DECREF(b);
    }
    return Py_BuildValue("{sNsNsNsN}", "URL_ATTRS", url_attrs, "FOREIGN_BREAKOUT", breakout,
                         "RAWTEXT_NAMES", rawtext, "URL_ELEMENTS", url_elements);
error:
    Py_XDECREF(url_attrs);
    Py_XDECREF(breakout);
    Py_XDECREF(rawtext);
    Py_XDECREF(url_elements);
    return NULL;
}

static PyMethodDef Scanner_methods[] = {
    {"run", (PyCFunction)(void (*)(void))Scanner_run, METH_FASTCALL,
     "run(data, pos, emit, out, stats, edits, base, tag_cap, script_cap)"
     " -> (pos, emit, constructs, incomplete)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "consentgate.rewriter._speedups.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Scanner(granted, js_types, category_rank, hint_words, script_url, "
              "element_url, inline_category)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_traverse = (traverseproc)Scanner_traverse,
    .tp_clear = (inquiry)Scanner_clear,
    .tp_methods = Scanner_methods,
};

/* ---- Literals: re.finditer for an alternation of literal words ---------------------- */

/*
 * Literals(words).finditer(text) -> [(start, end), ...]: the matches of the regular
 * expression b"|".join(map(re.escape, words)) as re.finditer finds them (leftmost, the
 * first word in `words` order at a position, non-overlapping). Catalog.match_inline's
 * anchor scan: Python's regex engine tries every alternative at every position.
 */
typedef struct {
    PyObject_HEAD
    Hint hint;
} Literals;

static int
Literals_init(Literals *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"words", NULL};
    PyObject *words;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &words))
        return -1;
    hint_free(&self->hint);
    if (hint_init(&self->hint, words, 0) < 0)
        return -1;
    if (self->hint.always) {
        PyErr_SetString(PyExc_ValueError, "an empty word matches everywhere");
        return -1;
    }
    return 0;
}

static void
Literals_dealloc(Literals *self)
{
    hint_free(&self->hint);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Literals_finditer(Literals *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const Hint *h = &self->hint;
    const unsigned char *d = view.buf;
    Py_ssize_t n = view.len;
    PyObject *out = PyList_New(0);
    for (Py_ssize_t i = 0; out != NULL && i < n;) {
        unsigned int c0 = d[i];
        if (h->head[c0] < 0 ||
            (i + 1 < n && !(h->pair[(c0 << 8 | d[i + 1]) >> 3] & (1u << (d[i + 1] & 7))))) {
            i++;
            continue;
        }
        /* the word listed first wins among those matching here (regex alternation) */
        Py_ssize_t best = -1;
        for (Py_ssize_t k = h->head[c0]; k >= 0; k = h->next[k]) {
            Py_ssize_t len = h->lens[k];
            if (n - i >= len && memcmp(d + i, h->words[k], (size_t)len) == 0 &&
                (best < 0 || h->order[k] < h->order[best]))
                best = k;
        }
        if (best < 0) {
            i++;
            continue;
        }
        PyObject *span = Py_BuildValue("(nn)", i, i + h->lens[best]);
        if (span == NULL || PyList_Append(out, span) < 0)
            Py_CLEAR(out);
        Py_XDECREF(span);
        i += h->lens[best];
    }
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef Literals_methods[] = {
    {"finditer", (PyCFunction)Literals_finditer, METH_O,
     "finditer(text) -> [(start, end)]: the matches of the alternation of the words"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LiteralsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "consentgate.rewriter._speedups.Literals",
    .tp_basicsize = sizeof(Literals),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Literals(words): find an alternation of literal byte strings",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Literals_init,
    .tp_dealloc = (destructor)Literals_dealloc,
    .tp_methods = Literals_methods,
};

static PyMethodDef module_methods[] = {
    {"script_end", (PyCFunction)(void (*)(void))py_script_end, METH_FASTCALL,
     "script_end(data, pos, esc) -> (end or -1 - resume, esc)"},
    {"tables", tables, METH_NOARGS, "The C copies of the rewriter's Python tables."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "consentgate.rewriter._speedups",
    .m_doc = "C accelerator for the streaming rewriter's data state (optional).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_tables();
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyType_Ready(&LiteralsType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&LiteralsType);
    if (PyModule_AddObject(m, "Literals", (PyObject *)&LiteralsType) < 0) {
        Py_DECREF(&LiteralsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
