"""The graph recorder, compiled: ``Function.apply`` and the fields of the graph's nodes (lesson 09).

``tinytorch/core/autograd.py`` holds the readable ``Function.apply``, the reference. This module
does the same work in C: unpack the inputs, decide whether to record, run the op's ``forward``,
record the node and make the result tensor. A 4x4 ``a * b`` spends most of its time there rather
than in the multiplication, so the recorder sets how fast small ops run: code that works tensor by
tensor, and the many small ops of a training step's bookkeeping. ``Function.apply`` follows the kernel backend: this one under ``"compiled"``, the
readable one under ``"reference"``. With an op observer set (the profiler), this one hands the call
to the readable one, which reports it.

``NodeFields`` is the storage of ``autograd.Context``: when this module is built, ``Context`` is a
Python subclass of it, so both recorders make the same class of node, and this one writes its
fields as C struct members instead of looking each attribute up by name.
"""

cimport numpy as cnp
from cpython.object cimport PyObject_Call
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM

import numpy as np

cnp.import_array()


cdef class NodeFields:
    """The fields every graph node has (documented on ``autograd.Context``); op-specific attributes go in ``__dict__``."""

    cdef public object fn, needs_input_grad, parents, saved, stamp, output_shape, output_dtype, retains, freed
    cdef dict __dict__
    cdef object __weakref__


# What the recorder reads from autograd, set once by install(): the classes it makes, the checks it
# runs and autograd's module dictionary, whose write clocks and observer change as the program runs.
cdef object Context = None
cdef object Tensor = None
cdef object new_tensor = None
cdef object check_history = None
cdef object grad_state = None
cdef object reference_apply = None
cdef dict autograd_globals = None
cdef object ndarray = np.ndarray
cdef object generic = np.generic
cdef object asarray = np.asarray


def install(autograd) -> None:
    """Take the classes and state the recorder needs from the ``autograd`` module (it calls this on import)."""
    global Context, Tensor, new_tensor, check_history, grad_state, reference_apply, autograd_globals
    Context, Tensor = autograd.Context, autograd.Tensor
    new_tensor = Tensor.__new__
    check_history = autograd._check_history
    grad_state = autograd._grad_state
    reference_apply = autograd.reference_apply.__func__
    autograd_globals = autograd.__dict__


cdef inline void set_item(tuple t, Py_ssize_t i, object value):
    """Fill slot ``i`` of the new tuple ``t`` (PyTuple_SET_ITEM takes over a reference)."""
    Py_INCREF(value)
    PyTuple_SET_ITEM(t, i, value)


cdef inline object make_tensor(object data, object node):
    """autograd._tensor: a Tensor holding ``data`` as it is, made by ``node`` (None: a leaf)."""
    t = new_tensor(Tensor)
    t._data = data
    t.grad = None
    t._node = node
    t.requires_grad = node is not None
    return t


def apply(cls, *inputs, **params):
    """``Function.apply``, compiled: same arguments, same result, same node (see autograd.Function.apply)."""
    if autograd_globals["_observer"] is not None:
        return reference_apply(cls, *inputs, **params)
    cdef Py_ssize_t n = len(inputs), i
    # forward's arguments (ctx first, set below), and per input: its parent and whether it wants a gradient
    cdef tuple arguments = PyTuple_New(n + 1)
    cdef tuple parents = PyTuple_New(n)
    cdef tuple needs = PyTuple_New(n)
    cdef bint wanted = False
    cdef NodeFields node
    recorded_write_clock = autograd_globals["_recorded_write_clock"]
    for i in range(n):
        x = inputs[i]
        parent = None
        wants = False
        if isinstance(x, Tensor):
            array = x._data
            if x.requires_grad:
                if x._node is None:
                    parent = x
                else:
                    node = x._node
                    if node.stamp < recorded_write_clock:
                        check_history(x, cls.__name__)
                    parent = node
                wants = wanted = True
        else:
            array = x.item() if isinstance(x, generic) else x
        set_item(arguments, i + 1, array)
        set_item(parents, i, parent)
        set_item(needs, i, wants)
    cdef bint record = wanted and grad_state.enabled
    cdef NodeFields ctx = NodeFields.__new__(Context)
    ctx.fn = cls
    ctx.needs_input_grad = needs if record else (False,) * n
    ctx.saved = ()
    set_item(arguments, 0, ctx)
    out = PyObject_Call(cls.forward, arguments, params)
    if type(out) is not ndarray:
        out = asarray(out)
    if not record or (<cnp.ndarray>out).descr.kind != b"f":
        return make_tensor(out, None)
    ctx.parents = parents
    ctx.stamp = autograd_globals["_clock"]
    ctx.output_shape = out.shape
    ctx.output_dtype = out.dtype
    ctx.retains = None
    ctx.freed = False
    return make_tensor(out, ctx)
