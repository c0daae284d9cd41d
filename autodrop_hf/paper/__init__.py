"""The paper's experiments reproduced with the library: the noisy quadratic model (Section 3,
Theorem 3.2) and the convergence analysis of Algorithm 2 (Section 5.2): ``autodrop-hf nqm``."""
