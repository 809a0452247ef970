"""Seed 002: "Gaussian Mixture Model" (a notebook gist: a hand-written EM, 2-D, three components).

300 points around (2, 4), (-5, 3), (0, -4); EM from means (-5, -5), (0, -5), (0, 5) with identity
covariances and equal weights, a fixed number of iterations. The seed's EM is correct; ``run``
runs it and the ``GaussianMixture`` given from the same start for the same number of iterations.
"""

import warnings

import numpy as np
import scipy.stats as stats


def run(GaussianMixture, full=False, ml=None):
    """``ml``: keyword arguments that make ``GaussianMixture`` maximum likelihood."""
    np.random.seed(0)  # ADAPTED: the seed draws without a seed
    n_points = 100

    actual_means = [[2, 4], [-5, 3], [0, -4]]
    actual_cov_mats = [[[1, 0], [0, 1]], [[1, 0], [0, 1]], [[1, 0], [0, 1]]]

    blobs = [np.random.multivariate_normal(m, s, (n_points,)) for m, s in zip(actual_means, actual_cov_mats)]
    X = np.concatenate(blobs)

    pi_s = [1/3]*3
    mu_s = [[-5, -5], [0, -5], [0, 5]]
    sigma_s = [[[1, 0], [0, 1]], [[1, 0], [0, 1]], [[1, 0], [0, 1]]]
    mu_start = np.array(mu_s, dtype=float)

    history = []
    history.append(mu_s.copy())

    # ADAPTED: 100 iterations in the seed; 40 in CI (its scipy E-step takes ~30 ms an iteration)
    n_iterations = 100 if full else 40
    for itr in range(n_iterations):
        # ADAPTED: the seed prints Mu, SIGMA and PI here every iteration

        # E Step
        rand_vars = [stats.multivariate_normal(mu, sigma) for mu, sigma in zip(mu_s, sigma_s)]
        gamma_mat = np.array([[pi*rand_var.pdf([x]) for pi, rand_var in zip(pi_s, rand_vars)] for x in X])  # 3x100
        probs = gamma_mat/np.sum(gamma_mat, axis=1).reshape((300, 1))

        # M step
        for i, (mu, sigma) in enumerate(zip(mu_s, sigma_s)):
            mu_s[i] = np.sum(probs[:, i].reshape((300, 1)) * X, axis=0) / np.sum(probs[:, i])
            sigma_s[i] = (X-mu_s[i]).T.dot((X-mu_s[i])*probs[:, i].reshape((300, 1))) / np.sum(probs[:, i])
            pi_s[i] = np.mean(probs[:, i])

        history.append(mu_s.copy())
    # ADAPTED: the per-iteration plots and the GIF are left out

    gm = GaussianMixture(
        n_components=3, weights_init=np.full(3, 1 / 3), means_init=mu_start,
        precisions_init=np.stack([np.eye(2)] * 3), reg_covar=0.0, tol=0.0, max_iter=n_iterations,
        **(ml or {}),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: "did not converge" after exactly n_iterations
        gm.fit(X)
    return {"X": X, "mu_s": np.array(mu_s), "sigma_s": np.array(sigma_s), "pi_s": np.array(pi_s),
            "history": np.array(history), "gm": gm}
