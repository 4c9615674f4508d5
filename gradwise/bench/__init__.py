"""`gradwise bench`: the speed suite, gradwise against PyTorch CPU and scikit-learn.

Every case trains or runs the same model on the same data with the same batch size and threads
in both libraries, times them round-robin and reports the median of each and their ratio
(gradwise / peer, < 1: gradwise is faster), next to the case's target. The peers (torch,
scikit-learn, threadpoolctl: the `bench` extra) are optional and imported only here; a case
whose peer is missing reports gradwise alone. See docs/performance.md.

Modules: `runner` (the command line, one worker process per OpenBLAS environment), `worker`
(runs the cases), `cases/` (one module per family), `epochs` (the shared training loops),
`timing`, `machine`, `report`, `context`. Nothing here is imported by `import gradwise`.
"""
