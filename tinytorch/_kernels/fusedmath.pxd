# exp, log and sqrt for the fused type `floating`: each kernel is compiled once for float32 and once
# for float64, and each dtype gets its own C function (float32's exp is the vectorisable tt_expf).

from cython cimport floating
from libc.math cimport exp, log, logf, sqrt, sqrtf

from .fastexp cimport tt_expf


cdef inline floating fexp(floating v) noexcept nogil:
    if floating is float:
        return tt_expf(v)  # vectorisable; libm's expf is a call per element
    else:
        return exp(v)


cdef inline floating flog(floating v) noexcept nogil:
    if floating is float:
        return logf(v)
    else:
        return log(v)


cdef inline floating fsqrt(floating v) noexcept nogil:
    if floating is float:
        return sqrtf(v)
    else:
        return sqrt(v)
