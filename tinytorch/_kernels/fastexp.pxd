# exp() for float32 that the C compiler can vectorise, shared by the softmax and attention kernels.
#
# libm's expf is an opaque call, so a loop calling it runs one element at a time, while NumPy's exp
# uses SIMD: on a (2048, 512) softmax the scalar calls made the compiled kernel slower than the
# five-pass NumPy reference. This is Cephes' expf written with plain arithmetic and an int-to-float
# bit cast only, so it inlines and GCC turns the loop into vector code. Relative error <= 2e-7 (about
# one float32 ulp) over the whole range; below -87.3 (exp underflows float32) it returns exactly 0,
# so a -inf mask still gives a zero weight; the input is clamped above at 88.7.

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    static inline float tt_expf(float x) {
        const float hi = 88.7f, lo = -87.3f;
        float underflow = x < lo ? 0.0f : 1.0f;
        x = x > hi ? hi : (x < lo ? lo : x);
        /* x = k ln2 + r with |r| <= ln2 / 2; rounding by truncation of a value made positive */
        float fk = x * 1.44269504088896341f + 0.5f;
        int32_t k = (int32_t)(fk + 128.0f) - 128;
        float kf = (float)k;
        float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
        float r2 = r * r;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r2 + r + 1.0f;
        int32_t bits = (k + 127) << 23;
        float scale;
        memcpy(&scale, &bits, sizeof scale);
        return p * scale * underflow;
    }
    """
    float tt_expf(float x) nogil
