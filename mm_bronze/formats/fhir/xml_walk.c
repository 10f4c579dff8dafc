/* The FHIR XML fast path's walk over expat's events, in C (see xml_decider.py).
 *
 * walk(data, context) parses ``data`` once with Python's own expat (the parser the detailed
 * walker uses, through pyexpat's C API) and checks every FHIR element
 * against the tables of ``xml_tables``: known element, repeats, ``[x]`` choice, attributes,
 * value format, and, when a complex element closes, what it requires. XHTML narratives are
 * only counted (their depth is bounded); text outside them must be XML whitespace.
 *
 * It returns ``(notes, declaration)``: the values the summary notes, in document order, and
 * the XML declaration (bytes, or None); or None where the walker must decide. None never
 * means "invalid": whatever this walk does not handle, or any doubt, is left to the walker.
 * ``xml_decider`` builds the context (the tables of a version) and makes the summary.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <expat.h>
#include <pyexpat.h>
#include <string.h>

/* Kinds of ``xml_tables`` (a test compares them, and MAX_DEPTH, with the Python ones). */
enum { PRIMITIVE, COMPLEX, CONTAINER, RESOURCE, NARRATIVE, NOTED, ENTRY, ENTRY_RESOURCE, TEXT };

/* ``structure.MAX_DEPTH``: an element with this many open ancestors is too deep. */
#define MAX_DEPTH 100

static struct PyExpat_CAPI *expat_capi;

typedef struct {
    PyObject *table; /* borrowed: the element's children (a dict) */
    PyObject *seen;  /* owned: what it has seen of them (a set); NULL for a primitive */
    PyObject *need;  /* borrowed: what it must have seen when it closes, or NULL */
} Frame;

typedef struct {
    XML_Parser parser;
    PyObject *roots;     /* borrowed: root resources' specs */
    PyObject *primitive; /* borrowed: a primitive's children (extensions) */
    PyObject *held;      /* borrowed: what a container notes once it holds a resource */
    PyObject *holds;     /* borrowed: a frozenset of ``held``, what a container needs */
    PyObject *url_check; /* borrowed: ``xml_tables.check_for("uri")`` */
    PyObject *xsi;       /* borrowed: str, the prefix of schema-hint attribute names */
    PyObject *notes;     /* owned list */
    PyObject *declaration; /* owned: the XML declaration's bytes, or NULL */
    int unsure;            /* the walker decides */
    int depth;     /* open FHIR elements */
    int narrative; /* open XHTML elements of the current narrative, its div included */
    Frame frames[MAX_DEPTH];
} Walk;

static void give_up(Walk *w)
{
    /* Leave the rest to the walker: no more events, only the parse to its end. */
    w->unsure = 1;
    if (PyErr_Occurred())
        PyErr_Clear();
    expat_capi->SetElementHandler(w->parser, NULL, NULL);
    expat_capi->SetCharacterDataHandler(w->parser, NULL);
    expat_capi->SetDefaultHandlerExpand(w->parser, NULL);
}

static PyObject *lookup(PyObject *table, const char *name)
{
    PyObject *key = PyUnicode_FromString(name);
    if (key == NULL)
        return NULL;
    PyObject *spec = PyDict_GetItemWithError(table, key); /* borrowed */
    Py_DECREF(key);
    if (spec != NULL && (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 8))
        return NULL; /* not a spec of ``xml_tables`` */
    return spec;
}

/* A value for ``check`` (a callable, truthy when valid): 1 valid, 0 not, -1 error. */
static int valid(PyObject *check, const char *value)
{
    PyObject *text = PyUnicode_FromString(value);
    if (text == NULL)
        return -1;
    PyObject *result = PyObject_CallOneArg(check, text);
    Py_DECREF(text);
    if (result == NULL)
        return -1;
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

/* A primitive's attributes: only ``value`` (non-empty, and ``check`` when given) and ``id``
 * (non-empty). Sets *value to the value attribute (or NULL). 1 fine, 0 not, -1 error. */
static int primitive_attributes(const char **atts, PyObject *check, const char **value)
{
    *value = NULL;
    for (; atts[0] != NULL; atts += 2) {
        if (strcmp(atts[0], "value") == 0) {
            if (atts[1][0] == '\0')
                return 0;
            if (check != NULL) {
                int ok = valid(check, atts[1]);
                if (ok != 1)
                    return ok;
            }
            *value = atts[1];
        }
        else if (strcmp(atts[0], "id") != 0 || atts[1][0] == '\0')
            return 0;
    }
    return 1;
}

/* What a complex element's attributes (``id``, an extension's ``url``) give it: a new set
 * of their names, or NULL (``*fine`` 0 when they are not allowed, or an error). */
static PyObject *carried(const char **atts, PyObject *allowed, PyObject *url_check, int *fine)
{
    *fine = 0;
    PyObject *seen = PySet_New(NULL);
    if (seen == NULL)
        return NULL;
    for (; atts[0] != NULL; atts += 2) {
        PyObject *name = PyUnicode_FromString(atts[0]);
        if (name == NULL)
            goto fail;
        int known = PySet_Contains(allowed, name);
        int added = known == 1 ? PySet_Add(seen, name) : -1;
        Py_DECREF(name);
        if (added < 0)
            goto fail;
        if (strcmp(atts[0], "id") == 0) {
            if (atts[1][0] == '\0')
                goto fail;
        }
        else if (atts[1][0] == '\0' || valid(url_check, atts[1]) != 1)
            goto fail;
    }
    *fine = 1;
    return seen;
fail:
    Py_DECREF(seen);
    return NULL;
}

/* The names of the notes this walk takes (the others are local names of the tables). */
static PyObject *RESOURCE_TYPE, *ENTRY_NOTE, *ENTRY_TYPE;

static int note(Walk *w, PyObject *name, PyObject *value)
{
    PyObject *pair = PyTuple_Pack(2, name, value);
    if (pair == NULL)
        return -1;
    int failed = PyList_Append(w->notes, pair);
    Py_DECREF(pair);
    return failed;
}

static int note_text(Walk *w, PyObject *name, const char *value)
{
    PyObject *text = PyUnicode_FromString(value);
    if (text == NULL)
        return -1;
    int failed = note(w, name, text);
    Py_DECREF(text);
    return failed;
}

static void XMLCALL narrative_start(void *data, const XML_Char *name, const XML_Char **atts);
static void XMLCALL narrative_end(void *data, const XML_Char *name);

static int push(Walk *w, PyObject *table, PyObject *seen, PyObject *need)
{
    if (w->depth >= MAX_DEPTH) {
        Py_XDECREF(seen);
        return -1;
    }
    Frame *frame = &w->frames[w->depth++];
    frame->table = table;
    frame->seen = seen;
    frame->need = (need != NULL && PySet_GET_SIZE(need) > 0) ? need : NULL;
    return 0;
}

static void XMLCALL start(void *data, const XML_Char *name, const XML_Char **atts)
{
    Walk *w = (Walk *)data;
    if (w->depth == 0) { /* the root resource */
        PyObject *spec = lookup(w->roots, name);
        if (spec == NULL)
            goto unsure;
        Py_ssize_t xsi_size;
        const char *xsi = PyUnicode_AsUTF8AndSize(w->xsi, &xsi_size);
        for (; atts[0] != NULL; atts += 2)
            if (strncmp(atts[0], xsi, (size_t)xsi_size) != 0)
                goto unsure;
        PyObject *seen = PySet_New(NULL);
        if (seen == NULL || push(w, PyTuple_GET_ITEM(spec, 4), seen, PyTuple_GET_ITEM(spec, 5)))
            goto unsure;
        if (note(w, RESOURCE_TYPE, PyTuple_GET_ITEM(spec, 7)) < 0)
            goto unsure;
        return;
    }
    Frame *parent = &w->frames[w->depth - 1];
    PyObject *spec = lookup(parent->table, name);
    if (spec == NULL)
        goto unsure;
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    PyObject *track = PyTuple_GET_ITEM(spec, 1);
    if (parent->seen == NULL && (track != Py_None || kind == RESOURCE || kind == ENTRY_RESOURCE))
        goto unsure; /* never in the tables: a primitive has nothing to track */
    if (track != Py_None) {
        int seen = PySet_Contains(parent->seen, track);
        if (seen < 0)
            goto unsure;
        if (seen) {
            if (PyTuple_GET_ITEM(spec, 2) != Py_True)
                goto unsure;
        }
        else if (PySet_Add(parent->seen, track) < 0)
            goto unsure;
    }
    PyObject *children = PyTuple_GET_ITEM(spec, 4);
    const char *value;
    int fine;
    switch (kind) {
    case TEXT: /* any non-empty value: checked here, without a call */
    case PRIMITIVE:
    case NOTED:
        if (primitive_attributes(atts, kind == TEXT ? NULL : children, &value) != 1)
            goto unsure;
        if (kind == NOTED && value != NULL && note_text(w, PyTuple_GET_ITEM(spec, 7), value) < 0)
            goto unsure;
        if (push(w, w->primitive, NULL, NULL))
            goto unsure;
        return;
    case COMPLEX:
    case ENTRY: {
        PyObject *seen = carried(atts, PyTuple_GET_ITEM(spec, 6), w->url_check, &fine);
        if (!fine || push(w, children, seen, PyTuple_GET_ITEM(spec, 5)))
            goto unsure;
        if (kind == ENTRY && note(w, ENTRY_NOTE, seen) < 0)
            goto unsure;
        return;
    }
    case CONTAINER: {
        if (atts[0] != NULL)
            goto unsure;
        PyObject *seen = PySet_New(NULL);
        if (seen == NULL || push(w, children, seen, w->holds))
            goto unsure;
        return;
    }
    case RESOURCE:
    case ENTRY_RESOURCE: {
        if (atts[0] != NULL)
            goto unsure;
        int holds = PySet_Contains(parent->seen, w->held);
        if (holds != 0 || PySet_Add(parent->seen, w->held) < 0)
            goto unsure;
        PyObject *seen = PySet_New(NULL);
        if (seen == NULL || push(w, children, seen, PyTuple_GET_ITEM(spec, 5)))
            goto unsure;
        if (kind == ENTRY_RESOURCE && note(w, ENTRY_TYPE, PyTuple_GET_ITEM(spec, 7)) < 0)
            goto unsure;
        return;
    }
    case NARRATIVE:
        if (w->depth + 1 > MAX_DEPTH)
            goto unsure;
        w->narrative = 1;
        expat_capi->SetElementHandler(w->parser, narrative_start, narrative_end);
        return;
    default:
        goto unsure;
    }
unsure:
    give_up(w);
}

static void XMLCALL end(void *data, const XML_Char *name)
{
    Walk *w = (Walk *)data;
    Frame *frame = &w->frames[--w->depth];
    PyObject *seen = frame->seen;
    if (frame->need != NULL) {
        int holds = PyObject_RichCompareBool(frame->need, seen, Py_LE);
        if (holds != 1) {
            Py_XDECREF(seen);
            give_up(w);
            return;
        }
    }
    Py_XDECREF(seen);
}

static void XMLCALL narrative_start(void *data, const XML_Char *name, const XML_Char **atts)
{
    Walk *w = (Walk *)data;
    if (w->depth + ++w->narrative > MAX_DEPTH)
        give_up(w);
}

static void XMLCALL narrative_end(void *data, const XML_Char *name)
{
    Walk *w = (Walk *)data;
    if (--w->narrative == 0)
        expat_capi->SetElementHandler(w->parser, start, end);
}

static void XMLCALL text(void *data, const XML_Char *s, int len)
{
    Walk *w = (Walk *)data;
    if (w->narrative)
        return;
    for (int i = 0; i < len; i++) {
        char c = s[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            give_up(w);
            return;
        }
    }
}

static void XMLCALL other(void *data, const XML_Char *s, int len)
{
    /* Markup no other handler takes (comments, processing instructions, CDATA section marks,
     * whose text is reported as text): the XML declaration is kept for its encoding. */
    Walk *w = (Walk *)data;
    if (len >= 6 && memcmp(s, "<?xml", 5) == 0 &&
        (s[5] == ' ' || s[5] == '\t' || s[5] == '\r' || s[5] == '\n')) {
        if (w->declaration == NULL) {
            w->declaration = PyBytes_FromStringAndSize(s, len);
            if (w->declaration == NULL)
                give_up(w);
        }
    }
}

static void XMLCALL doctype(void *data, const XML_Char *name, const XML_Char *sysid,
                            const XML_Char *pubid, int has_internal_subset)
{
    give_up((Walk *)data);
}

static PyObject *walk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[1]) ||
        PyTuple_GET_SIZE(args[1]) != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "walk(data: bytes, (roots, primitive, held, holds, xsi, url_check))");
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (size > INT_MAX)
        Py_RETURN_NONE;
    PyObject *context = args[1];
    Walk w;
    w.roots = PyTuple_GET_ITEM(context, 0);
    w.primitive = PyTuple_GET_ITEM(context, 1);
    w.held = PyTuple_GET_ITEM(context, 2);
    w.holds = PyTuple_GET_ITEM(context, 3);
    w.xsi = PyTuple_GET_ITEM(context, 4);
    w.url_check = PyTuple_GET_ITEM(context, 5);
    if (!PyDict_Check(w.roots) || !PyDict_Check(w.primitive) || !PyUnicode_Check(w.xsi) ||
        !PyFrozenSet_Check(w.holds)) {
        PyErr_SetString(PyExc_TypeError, "walk: a context of the wrong types");
        return NULL;
    }
    w.unsure = 0;
    w.depth = 0;
    w.narrative = 0;
    w.declaration = NULL;
    w.notes = PyList_New(0);
    if (w.notes == NULL)
        return NULL;
    w.parser = expat_capi->ParserCreate_MM(NULL, NULL, " ");
    if (w.parser == NULL) {
        Py_DECREF(w.notes);
        return PyErr_NoMemory();
    }
    expat_capi->SetUserData(w.parser, &w);
    expat_capi->SetElementHandler(w.parser, start, end);
    expat_capi->SetCharacterDataHandler(w.parser, text);
    expat_capi->SetDefaultHandlerExpand(w.parser, other);
    expat_capi->SetStartDoctypeDeclHandler(w.parser, doctype);
    int parsed = expat_capi->Parse(w.parser, PyBytes_AS_STRING(args[0]), (int)size, 1);
    expat_capi->ParserFree(w.parser);
    if (PyErr_Occurred())
        PyErr_Clear();
    for (int i = 0; i < w.depth; i++)
        Py_XDECREF(w.frames[i].seen);
    if (!parsed || w.unsure || w.depth != 0 || w.narrative != 0 || PyList_GET_SIZE(w.notes) == 0) {
        Py_DECREF(w.notes);
        Py_XDECREF(w.declaration);
        Py_RETURN_NONE;
    }
    PyObject *declaration = w.declaration != NULL ? w.declaration : Py_NewRef(Py_None);
    PyObject *out = PyTuple_Pack(2, w.notes, declaration);
    Py_DECREF(w.notes);
    Py_DECREF(declaration);
    return out;
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "walk(data, context) -> (notes, declaration) | None: the fast path's walk of FHIR XML."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "xml_walk", "The FHIR XML fast path's walk, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit_xml_walk(void)
{
    expat_capi = (struct PyExpat_CAPI *)PyCapsule_Import(PyExpat_CAPSULE_NAME, 0);
    if (expat_capi == NULL)
        return NULL;
    if (expat_capi->size < (int)sizeof(struct PyExpat_CAPI) ||
        strcmp(expat_capi->magic, PyExpat_CAPI_MAGIC) != 0) {
        PyErr_SetString(PyExc_ImportError, "pyexpat's C API is not the one built against");
        return NULL;
    }
    RESOURCE_TYPE = PyUnicode_InternFromString("resourceType");
    ENTRY_NOTE = PyUnicode_InternFromString("entry");
    ENTRY_TYPE = PyUnicode_InternFromString("entryType");
    if (RESOURCE_TYPE == NULL || ENTRY_NOTE == NULL || ENTRY_TYPE == NULL)
        return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL)
        return NULL;
    PyObject *kinds = Py_BuildValue("(iiiiiiiii)", PRIMITIVE, COMPLEX, CONTAINER, RESOURCE,
                                    NARRATIVE, NOTED, ENTRY, ENTRY_RESOURCE, TEXT);
    if (PyModule_AddIntConstant(created, "MAX_DEPTH", MAX_DEPTH) < 0 || kinds == NULL ||
        PyModule_AddObject(created, "KINDS", kinds) < 0) {
        Py_XDECREF(kinds);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
