/* mailbag.imap._sendmany: write many (fd, bytes) pairs with the GIL released
 * once for the whole list.
 *
 * Why C: the IDLE push (imap/fanout.py) hands most of its socket writes to a
 * helper thread while the event loop's thread prepares the rest. A Python
 * loop of os.write() in that thread takes and gives back the GIL around
 * every write, and the two threads then hand the GIL to each other tens of
 * thousands of times; here the helper needs it only at the start and the end
 * of a list. The module is optional: fanout.py writes in the event loop's
 * thread without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <unistd.h>

/* send_all(items: list[tuple[int, bytes]]) -> list[tuple[int, int]]
 *
 * Writes each item's bytes to its descriptor with one write() call (retried
 * on EINTR). Returns (index, result) for every item not written whole:
 * result is the count written (0 for EAGAIN) or -errno. */
static PyObject *
send_all(PyObject *self, PyObject *arg)
{
    PyObject *items = PySequence_Tuple(arg);   /* a snapshot nobody can change */
    if (items == NULL)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    int *fds = PyMem_New(int, n ? n : 1);
    const char **bufs = PyMem_New(const char *, n ? n : 1);
    Py_ssize_t *lens = PyMem_New(Py_ssize_t, n ? n : 1);
    Py_ssize_t *res = PyMem_New(Py_ssize_t, n ? n : 1);
    PyObject *out = NULL;
    if (!fds || !bufs || !lens || !res) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(items, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "send_all: items must be (fd, bytes) pairs");
            goto done;
        }
        long fd = PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
        if (fd == -1 && PyErr_Occurred())
            goto done;
        if (fd < 0 || fd > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "send_all: bad file descriptor");
            goto done;
        }
        PyObject *data = PyTuple_GET_ITEM(item, 1);
        if (!PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "send_all: data must be bytes");
            goto done;
        }
        fds[i] = (int)fd;
        bufs[i] = PyBytes_AS_STRING(data);
        lens[i] = PyBytes_GET_SIZE(data);
    }
    /* The bytes objects stay alive: `items` holds them until we return. */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        ssize_t r;
        do {
            r = write(fds[i], bufs[i], (size_t)lens[i]);
        } while (r < 0 && errno == EINTR);
        if (r < 0)
            res[i] = (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
        else
            res[i] = r;
    }
    Py_END_ALLOW_THREADS
    out = PyList_New(0);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (res[i] == lens[i])
            continue;
        PyObject *pair = Py_BuildValue("(nn)", i, res[i]);
        if (pair == NULL || PyList_Append(out, pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(pair);
    }
done:
    PyMem_Free(fds);
    PyMem_Free(bufs);
    PyMem_Free(lens);
    PyMem_Free(res);
    Py_DECREF(items);
    return out;
}

static PyMethodDef methods[] = {
    {"send_all", send_all, METH_O,
     "send_all(items) -> list of (index, written or -errno) for the items not "
     "written whole; the GIL is released for the whole list."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mailbag.imap._sendmany",
    "Many socket writes with one GIL release (see imap/fanout.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__sendmany(void)
{
    return PyModule_Create(&module);
}
