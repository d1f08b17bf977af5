"""Shared pytest setup for the unit tests.

The unit tests use tiny tensors, for which one thread is fastest; with two
OpenMP threads on a busy 2-core machine every small batched matmul waits for
a time slice (milliseconds instead of microseconds). Results do not depend on
the thread count.
"""

import torch

torch.set_num_threads(1)
