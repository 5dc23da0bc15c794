# GELU and its derivative for one float32, in C the compiler can vectorise (the GELU kernels' loops).
#
# Written in C rather than Cython so that every constant is a float (a Cython literal is a double,
# which would turn the arithmetic into double and halve the vector width) and nothing branches:
# the clamps become vector selects, erf is a rational function and exp is tt_expf. erf(x) on
# [-4, 4] is x P(x^2) / Q(x^2) (the form Eigen and XLA use; absolute error 4.2e-7 measured against
# math.erf); beyond +-4 it is +-1 in float32. tanh(u) = 1 - 2 / (exp(2u) + 1), exact +-1 at the ends.

from .fastexp cimport tt_expf


cdef extern from *:
    """
    static inline float tt_erff(float x) {
        x = x > 4.0f ? 4.0f : (x < -4.0f ? -4.0f : x);
        float x2 = x * x;
        float p = -2.72614225801306e-10f;
        p = p * x2 + 2.77068142495902e-08f;
        p = p * x2 - 2.10102402082508e-06f;
        p = p * x2 - 5.69250639462346e-05f;
        p = p * x2 - 7.34990630326855e-04f;
        p = p * x2 - 2.95459980854025e-03f;
        p = p * x2 - 1.60960333262415e-02f;
        float q = -1.45660718464996e-05f;
        q = q * x2 - 2.13374055278905e-04f;
        q = q * x2 - 1.68282697438203e-03f;
        q = q * x2 - 7.37332916720468e-03f;
        q = q * x2 - 1.42647390514189e-02f;
        return x * p / q;
    }
    static inline float tt_tanhf(float u) {
        return 1.0f - 2.0f / (tt_expf(2.0f * u) + 1.0f);
    }
    static inline float tt_gelu_f(float x) {
        return 0.5f * x * (1.0f + tt_erff(x * 0.70710678118654752f));
    }
    static inline float tt_gelu_slope_f(float x) {
        return 0.5f * (1.0f + tt_erff(x * 0.70710678118654752f)) + x * 0.39894228040143268f * tt_expf(-0.5f * x * x);
    }
    static inline float tt_gelu_tanh_f(float x) {
        return 0.5f * x * (1.0f + tt_tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }
    static inline float tt_gelu_tanh_slope_f(float x) {
        float t = tt_tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.79788456080286536f * (1.0f + 3.0f * 0.044715f * x * x);
    }
    """
    float tt_erff(float x) nogil
    float tt_gelu_f(float x) nogil
    float tt_gelu_slope_f(float x) nogil
    float tt_gelu_tanh_f(float x) nogil
    float tt_gelu_tanh_slope_f(float x) nogil
