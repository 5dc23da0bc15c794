"""The differentiable ops: one :class:`~tinytorch.core.autograd.Function` subclass each.

Grouped by kind: ``arithmetic`` (+ - * / ** @), ``elementwise`` (exp, log, relu, where, ...),
``reduction`` (sum, mean, max, ...), ``softmax`` (through the kernel registry), ``shape``
(reshape, transpose, expand) and ``indexing`` (getitem, concatenate, stack, pad).
"""
