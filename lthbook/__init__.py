"""lthbook: the helper package of the executable book on *Why Lottery Ticket Wins?*.

The data path of every figure of §5::

    presets (settings per scale)                          lthbook.presets
        -> cells of the figure's experiment               lthbook.synthetic_experiments / imp_experiments
        -> computed in worker processes or on a cluster   lthbook.executors
        -> per-cell cache on disk (written by the parent) lthbook.cache
        -> assembled result (a JSON-ready dict)           lthbook.runner.run_figure
        -> claim check + plot                             lthbook.claims, lthbook.*_plots
    with one record per figure naming each step           lthbook.registry

The package is flat; its modules form layers, and a module imports only from the
layers below it (``tests/test_layout.py`` checks this and that there is no cycle):

0. foundation -- ``_validation`` (argument checks: ``TypeError`` for a wrong type,
   ``ValueError`` for a bad value), ``scales`` (the ``ci``/``book``/``paper`` switch and
   the seed), ``cache`` (the on-disk cell cache), ``stats`` (line and power-law fits, the
   rate ``nu``, Spearman, crossings), ``style`` (the book's figure style, ``save_figure``),
   ``cells`` (what a cell and an experiment are), ``executors`` (where independent cells
   run: a local process pool, a Dask cluster or the caller's executor);
1. the paper's objects -- ``teacher`` (Eq. 1, ``W*``, the mask ``M``), ``risk`` (Eq. 2,
   gradient, Hessian), ``agd`` (Algorithm 1), ``tensor_init`` (§4's initialization),
   ``geometry`` (probes of Theorem 1), ``pruning`` (§4.1's magnitude pruning),
   ``convergence`` (the §4 chapter's sweeps), ``networks`` and ``training`` (the pruned
   networks of §5.2 and their training loops), ``batched`` (several IMP runs trained in
   lockstep as one batched model), ``imp`` (iterative magnitude pruning),
   ``mnist`` (MNIST offline), ``paper_code`` (the paper code's training step and rewind, for
   tests, benchmarks and as switches of the book's IMP);
2. experiments, claims and plots -- ``presets`` (every figure's settings per scale and
   their validation), ``synthetic_experiments`` (cells and assembly of Figures 2-5),
   ``imp_experiments`` (the IMP runs of Figures 6-7), ``claims`` (every claim check and
   ``ClaimError``), ``laws`` (the paper's laws fitted with bootstrap intervals and verdicts), and the plot modules ``problem_plots`` (§1-§2), ``geometry_plots``
   (§3), ``convergence_plots`` (§4), ``synthetic_plots`` (Figures 2-5), ``imp_plots``
   (Figures 6-7);
3. ``registry`` -- one record per figure: presets, experiment, check, plot, title;
4. ``runner`` -- ``run_figure``, ``check_figure``, ``plot_figure``, the committed references;
5. entry points -- ``timing`` (run-time estimates for ``bench/``), ``investigations``
   (experiments behind the verdicts that disagree with the paper), ``__main__`` (the
   command line ``python -m lthbook``), ``exercises`` (the chapters' auto-checks),
   ``assignments`` (student and instructor notebooks), ``otter_assign`` (Otter Grader sources).
"""

__version__ = "0.2.0"
