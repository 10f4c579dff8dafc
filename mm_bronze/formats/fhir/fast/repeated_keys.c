/* Repeated keys in JSON that msgspec has decoded, found in one pass over its bytes, in C.
 *
 * msgspec keeps the last of repeated keys and says nothing (msgspec#648), so the fast path
 * must look for them itself (``decider.keys_unique``). ``documents(data, lines)`` reads
 * ``data`` (JSON that decoded: its syntax is known to be right) and returns how many
 * top-level values it holds when no object in it repeats a key; with ``lines``, each value
 * must also be alone on its line (LF or CRLF between two, nothing else at the top level; the
 * last line may keep its CR). It returns -1 when a key repeats, and whenever it cannot tell
 * cheaply: a key written with an escape (``\u0061`` is ``a``), an object of more than
 * ``MAX_KEYS`` keys, nesting deeper than ``MAX_NESTING``, a top-level value that is not an
 * object or an array, or lines not as above. -1 never means "valid" or "invalid": the
 * caller then counts in Python (re-encoding the documents).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_KEYS 64
#define MAX_NESTING 128

typedef struct {
    const char *start;
    Py_ssize_t size;
} Key;

typedef struct {
    int object;    /* an object (else an array) */
    int expecting; /* an object that expects a key next */
    int keys;      /* where its keys start in the key stack */
} Open;

/* The keys of every open object; the GIL keeps one call at a time. */
static Key keys[MAX_NESTING * MAX_KEYS];

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The bytes a scan stops at, outside strings and inside them; both stop at NUL, which ends
 * every bytes object's buffer, so that the scans need no bounds check. */
static unsigned char structural[256];
static unsigned char special[256];

static Py_ssize_t count(const char *data, Py_ssize_t size, int lines)
{
    Open open[MAX_NESTING];
    int depth = 0;
    int top = 0; /* keys on the stack */
    Py_ssize_t values = 0;
    int after_value = 0; /* at the top level, a value just ended */
    const char *p = data;
    const char *end = data + size; /* *end is NUL */
    while (p < end) {
        char c = *p;
        if (depth == 0) {
            if (c == '{' || c == '[') {
                if (after_value && lines)
                    return -1; /* two values on one line */
                open[0].object = c == '{';
                open[0].expecting = c == '{';
                open[0].keys = 0;
                depth = 1;
                top = 0;
                p++;
                continue;
            }
            if (!lines) {
                if (!is_space(c))
                    return -1; /* a top-level scalar */
                p++;
                continue;
            }
            /* Lines: only a newline after a value, before the next one. */
            if (!after_value)
                return -1;
            if (c == '\r') {
                if (p + 1 == end)
                    return values; /* the last line keeps its CR */
                if (p[1] != '\n')
                    return -1;
                p++;
            }
            else if (c != '\n')
                return -1;
            p++;
            if (p == end || (*p != '{' && *p != '['))
                return -1; /* a blank line, a space, or a newline at the end */
            after_value = 0;
            continue;
        }
        while (!structural[(unsigned char)*p]) /* numbers, literals, ':', spaces */
            p++;
        if (p == end)
            break;
        c = *p;
        Open *here = &open[depth - 1];
        switch (c) {
        case '"': {
            const char *start = ++p;
            int escaped = 0;
            for (;;) {
                while (!special[(unsigned char)*p])
                    p++;
                if (*p == '\\' && p + 1 < end) {
                    escaped = 1;
                    p += 2;
                    continue;
                }
                break;
            }
            if (*p != '"' || p == end)
                return -1;
            Py_ssize_t length = p - start;
            p++;
            if (here->object && here->expecting) {
                if (escaped)
                    return -1;
                for (int k = here->keys; k < top; k++)
                    if (keys[k].size == length && memcmp(keys[k].start, start, length) == 0)
                        return -1; /* repeated */
                if (top - here->keys >= MAX_KEYS)
                    return -1;
                keys[top].start = start;
                keys[top].size = length;
                top++;
                here->expecting = 0;
            }
            continue;
        }
        case '{':
        case '[':
            if (depth == MAX_NESTING)
                return -1;
            open[depth].object = c == '{';
            open[depth].expecting = c == '{';
            open[depth].keys = top;
            depth++;
            break;
        case '}':
        case ']':
            top = here->keys;
            depth--;
            if (depth == 0) {
                values++;
                after_value = 1;
            }
            break;
        case ',':
            if (here->object)
                here->expecting = 1;
            break;
        case '\n':
        case '\r':
            if (lines)
                return -1; /* a value spread over lines */
            break;
        default: /* NUL inside the data: not JSON that decoded */
            return -1;
        }
        p++;
    }
    if (depth != 0 || (lines && !after_value))
        return -1;
    return values;
}

static PyObject *documents(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "documents(data: bytes, lines: bool)");
        return NULL;
    }
    int lines = PyObject_IsTrue(args[1]);
    if (lines < 0)
        return NULL;
    return PyLong_FromSsize_t(count(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), lines));
}

static PyMethodDef methods[] = {
    {"documents", (PyCFunction)(void (*)(void))documents, METH_FASTCALL,
     "documents(data, lines) -> int: top-level values when no key repeats, else -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "repeated_keys", "Repeated keys in decoded JSON, found in C.", -1,
    methods,
};

PyMODINIT_FUNC PyInit_repeated_keys(void)
{
    const char *stops = "\"{}[],\n\r";
    for (const char *c = stops; *c; c++)
        structural[(unsigned char)*c] = 1;
    structural[0] = special[0] = 1;
    special['"'] = special['\\'] = 1;
    return PyModule_Create(&module);
}
